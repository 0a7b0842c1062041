"""The guided after-meeting reflection: one step at a time, kept in the user's state.

The state is a plain dict saved through the Journal port after every turn, so
a reflection survives a restart and can be resumed days later. Phases:
"answer" (waiting for the step's answer), "followup" (waiting for the answer
to a follow-up question), "review" (summary proposed), "edit_summary".
"""

from __future__ import annotations

import re
from datetime import datetime

from .context import Context
from .prompt_data import Protocol, Step
from .records import Answer, Choice, Entry, Reply
from .registry import Button

#: The reflection's buttons: an option of the step, skip, back, save, edit the summary, go on, start again, new.
REFLECT = Button("r", r"(opt:\d{1,2}|skip|back|save|edit_summary|resume|restart|new)")
SAVE_WORDS = {"save", "yes", "y", "ok", "okay", "done", "accept", "keep", "save it", "looks good"}
TAGS_RE = re.compile(r"^\s*tags?\s*:\s*(.*)$", re.I | re.S)


def parse_tags(text: str) -> list[str]:
    seen: list[str] = []
    for raw in re.split(r"[,;\n]", text):
        tag = " ".join(raw.strip().lstrip("#").split()).lower()[:40]
        if tag and tag not in seen:
            seen.append(tag)
    return seen[:12]


def first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


class Reflection:
    """Drives one user's reflection through the steps of a protocol."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    # ----- helpers --------------------------------------------------------

    def protocol(self, state: dict) -> Protocol:
        protocols = self.ctx.prompts.protocols
        return protocols.get(state["protocol"]) or protocols[self.ctx.settings.protocol]

    def _question(self, state: dict, prefix: str = "") -> Reply:
        proto = self.protocol(state)
        step = proto.steps[state["step"]]
        say = self.ctx.say
        text = say("step_question", step=state["step"] + 1, total=len(proto.steps), question=step.question)
        if step.hint:
            text += f"\n{step.hint}"
        earlier = state["answers"].get(step.id, {}).get("answer")
        if earlier:
            text += "\n" + say("step_answer_before", answer=first_sentence(earlier, 200))
        choices = [Choice(label, REFLECT.data(f"opt:{i}")) for i, label in enumerate(step.options)]
        choices.append(Choice(say("button_skip"), REFLECT.data("skip")))
        if state["step"] > 0:
            choices.append(Choice(say("button_back"), REFLECT.data("back")))
        return Reply(prefix + text, tuple(choices))

    def _followup_buttons(self) -> tuple[Choice, ...]:
        return (Choice(self.ctx.say("button_skip"), REFLECT.data("skip")),
                Choice(self.ctx.say("button_back"), REFLECT.data("back")))

    def _proposal(self, state: dict) -> Reply:
        tags = ", ".join(state.get("tags") or []) or self.ctx.say("none")
        say = self.ctx.say
        return Reply(say("summary_proposal", summary=state["summary"], tags=tags),
                     (Choice(say("button_save"), REFLECT.data("save")),
                      Choice(say("button_edit_summary"), REFLECT.data("edit_summary")),
                      Choice(say("button_back"), REFLECT.data("back"))),
                     generated=state.get("summary_generated", False))

    def _touch(self, state: dict) -> None:
        state["touched"] = self.ctx.now().isoformat()

    def _source(self, state: dict) -> str:
        """Everything the user wrote in this reflection: names in it may be repeated back."""
        parts = []
        for a in state["answers"].values():
            parts += [a.get("answer", ""), a.get("followup_answer", "")]
        return "\n".join(p for p in parts if p)

    def describe_pending(self, state: dict) -> dict:
        proto = self.protocol(state)
        started = self.ctx.local(datetime.fromisoformat(state["started"]))
        return {"started": started, "step": min(state["step"] + 1, len(proto.steps)), "total": len(proto.steps)}

    # ----- entry points ---------------------------------------------------

    def start(self, user: str, user_state: dict) -> list[Reply]:
        if user_state.get("reflect"):
            say = self.ctx.say
            return [Reply(say("resume_or_restart", **self.describe_pending(user_state["reflect"])),
                          (Choice(say("button_go_on"), REFLECT.data("resume")),
                           Choice(say("button_start_again"), REFLECT.data("restart"))))]
        return self.restart(user, user_state)

    def restart(self, user: str, user_state: dict, protocol: str | None = None) -> list[Reply]:
        proto = self.ctx.prompts.protocols[protocol or self.ctx.settings.protocol]
        now = self.ctx.now().isoformat()
        state = {"protocol": proto.name, "step": 0, "phase": "answer", "answers": {},
                 "suggested": False, "suggestion": "", "started": now, "touched": now}
        user_state["reflect"] = state
        replies = [Reply(proto.intro)] if proto.intro else []
        return replies + [self._question(state)]

    def resume(self, state: dict) -> list[Reply]:
        self._touch(state)
        if state["phase"] == "followup":
            step = self.protocol(state).steps[state["step"]]
            q = state["answers"][step.id]["followup_question"]
            return [Reply(q, self._followup_buttons(),
                          generated=state["answers"][step.id].get("followup_generated", False))]
        if state["phase"] in ("review", "edit_summary"):
            state["phase"] = "review"
            return [self._proposal(state)]
        return [self._question(state)]

    async def on_text(self, user: str, state: dict, text: str) -> tuple[list[Reply], Entry | None]:
        """A typed message while the reflection is active."""
        self._touch(state)
        phase = state["phase"]
        if phase == "answer":
            return await self._answer(user, state, text), None
        if phase == "followup":
            step = self.protocol(state).steps[state["step"]]
            state["answers"][step.id]["followup_answer"] = text
            return await self._advance(user, state), None
        if phase == "edit_summary":
            state["summary"], state["summary_generated"] = text, False
            state["phase"] = "review"
            return [self._proposal(state)], None
        # review
        if text.strip().lower().rstrip(".!") in SAVE_WORDS:
            return [], self.to_entry(state)
        tags = TAGS_RE.match(text)
        if tags:
            state["tags"] = parse_tags(tags.group(1))
            return [Reply(self.ctx.say("tags_updated", tags=", ".join(state["tags"]) or self.ctx.say("none"))),
                    self._proposal(state)], None
        state["summary"], state["summary_generated"] = text, False
        return [self._proposal(state)], None

    async def on_choice(self, user: str, state: dict, data: str) -> tuple[list[Reply], Entry | None]:
        self._touch(state)
        action = data.removeprefix("r:")
        if action.startswith("opt:"):
            step = self.protocol(state).steps[state["step"]]
            index = action.removeprefix("opt:")
            if state["phase"] != "answer" or not index.isdigit() or int(index) >= len(step.options):
                return [Reply(self.ctx.say("choose_option")), *self.resume(state)], None
            return await self._answer(user, state, step.options[int(index)]), None
        if action == "skip":
            return await self.skip(user, state), None
        if action == "back":
            return self.back(state), None
        if action == "save" and state["phase"] == "review":
            return [], self.to_entry(state)
        if action == "edit_summary" and state["phase"] == "review":
            state["phase"] = "edit_summary"
            return [Reply(self.ctx.say("summary_edit_prompt"))], None
        return self.resume(state), None

    async def skip(self, user: str, state: dict) -> list[Reply]:
        self._touch(state)
        step = self.protocol(state).steps[min(state["step"], len(self.protocol(state).steps) - 1)]
        if state["phase"] == "answer":
            state["answers"][step.id] = {"question": step.question, "skipped": True}
            return await self._advance(user, state)
        if state["phase"] == "followup":
            return await self._advance(user, state)
        return self.resume(state)

    def back(self, state: dict) -> list[Reply]:
        self._touch(state)
        if state["phase"] in ("review", "edit_summary"):
            state["step"] = len(self.protocol(state).steps) - 1
        elif state["phase"] == "answer" and state["step"] > 0:
            state["step"] -= 1
        state["phase"] = "answer"
        return [self._question(state)]

    # ----- the steps ------------------------------------------------------

    async def _answer(self, user: str, state: dict, text: str) -> list[Reply]:
        proto = self.protocol(state)
        step = proto.steps[state["step"]]
        state["answers"][step.id] = {"question": step.question, "answer": text}
        if step.followup and self.ctx.settings.followups:
            notices: list[Reply] = []
            question, generated = await self.ctx.followup(
                user, step.question, text, self._source(state), step.fallbacks, notices)
            state["answers"][step.id].update(followup_question=question, followup_generated=generated)
            state["phase"] = "followup"
            return notices + [Reply(question, self._followup_buttons(), generated=generated)]
        return await self._advance(user, state)

    async def _advance(self, user: str, state: dict) -> list[Reply]:
        proto = self.protocol(state)
        replies = self._maybe_literature(state, proto)
        state["step"] += 1
        state["phase"] = "answer"
        if state["step"] < len(proto.steps):
            return replies + [self._question(state)]
        return replies + await self._review(user, state, proto)

    def _maybe_literature(self, state: dict, proto: Protocol) -> list[Reply]:
        """One idea from the literature, once, after the user has given their own reading."""
        ctx = self.ctx
        if state.get("suggested") or not ctx.settings.offer_literature or ctx.literature is None:
            return []
        done = proto.steps[: state["step"] + 1]
        if not any(s.own_reading and not state["answers"].get(s.id, {}).get("skipped")
                   and s.id in state["answers"] for s in done):
            return []
        try:
            found = ctx.literature.suggest(ctx.trim(self._source(state)))
        except Exception:  # the literature is a nicety: the reflection goes on without it
            return []
        state["suggested"] = True
        if found is None:
            return []
        state["suggestion"] = f"{found.title}, {found.citation}"
        return [Reply(ctx.say("literature", idea=found.idea, title=found.title, citation=found.citation))]

    def _answered(self, state: dict, proto: Protocol) -> list[tuple[Step, dict]]:
        return [(s, state["answers"][s.id]) for s in proto.steps
                if s.id in state["answers"] and state["answers"][s.id].get("answer")]

    def _fallback_summary(self, answered: list[tuple[Step, dict]]) -> str:
        """Built from the user's own first sentences: always true to what they said."""
        if not answered:
            return self.ctx.say("summary_all_skipped")
        picks = answered[:2] + ([answered[-1]] if len(answered) > 2 else [])
        return " ".join(f"{s.title}: {first_sentence(a['answer'])}" for s, a in picks)

    async def _review(self, user: str, state: dict, proto: Protocol) -> list[Reply]:
        answered = self._answered(state, proto)
        block = "\n".join(f"- {s.title}: {self.ctx.trim(' '.join(a['answer'].split()))[:300]}"
                          for s, a in answered)
        notices: list[Reply] = []
        source = self._source(state)
        if answered:
            summary, generated = await self.ctx.summary(user, block, source,
                                                        self._fallback_summary(answered), notices)
        else:
            summary, generated = self._fallback_summary(answered), False
        tags = [a["answer"].lower() for s, a in answered if a["answer"] in s.options]
        if self.ctx.literature is not None and source:
            try:
                tags += [t for t in self.ctx.literature.themes(self.ctx.trim(source)) if t not in tags]
            except Exception:
                pass
        state.update(phase="review", summary=summary, summary_generated=generated, tags=tags[:6])
        state["step"] = len(proto.steps)
        return notices + [self._proposal(state)]

    def to_entry(self, state: dict) -> Entry:
        proto = self.protocol(state)
        answers = []
        for step in proto.steps:
            a = state["answers"].get(step.id)
            if a is None:
                continue
            answers.append(Answer(step_id=step.id, question=a.get("question", step.question),
                                  answer=a.get("answer", ""), followup_question=a.get("followup_question", ""),
                                  followup_answer=a.get("followup_answer", ""), skipped=a.get("skipped", False)))
        first = next((a.answer for a in answers if a.answer), "")
        week = int(proto.name.rsplit(":", 1)[1]) if proto.name.startswith("checkin:") else None
        return Entry(kind="reflection", protocol=proto.name, title=first_sentence(first, 80), week=week,
                     summary=state.get("summary", ""), tags=list(state.get("tags", [])),
                     answers=answers, suggestion=state.get("suggestion", ""))
