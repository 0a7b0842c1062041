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
from .summary import Part, build_summary

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

    def written(self, state: dict) -> str:
        """Everything the person has typed in this reflection so far (read by the risk check)."""
        return self._source(state)

    def _own_words(self, state: dict) -> str:
        """What the person typed in this reflection, without button labels: the literature query."""
        proto = self.protocol(state)
        parts = []
        for step in proto.steps:
            a = state["answers"].get(step.id, {})
            if a.get("answer") and a["answer"] not in step.options:
                parts.append(a["answer"])
            if a.get("followup_answer"):
                parts.append(a["followup_answer"])
        return "\n".join(parts)

    @staticmethod
    def _asked(state: dict) -> list[str]:
        return [a["followup_question"] for a in state["answers"].values() if a.get("followup_question")]

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
        if not self.ctx.settings.followups:
            return await self._advance(user, state)
        asked = self._asked(state)
        notices: list[Reply] = []
        pick = None
        earlier = self._earlier(state, proto, step.id)
        if text in step.options and step.choices.get(text):
            pick = self.ctx.picker.for_choice(step, text, self._own_words(state), asked)
            if pick is not None:
                pick = await self.ctx.followup(user, step, text, self._source(state), asked, notices,
                                               earlier, pick)
        elif step.followup and text not in step.options and not self.ctx.picker.says_little(text):
            pick = await self.ctx.followup(user, step, text, self._source(state), asked, notices, earlier)
        if pick is None:
            return await self._advance(user, state)
        generated = pick.source == "model"
        state["answers"][step.id].update(followup_question=pick.text, followup_generated=generated,
                                         followup_source=pick.source)
        state["phase"] = "followup"
        return notices + [Reply(pick.text, self._followup_buttons(), generated=generated)]

    @staticmethod
    def _earlier(state: dict, proto: Protocol, current: str) -> dict[str, str]:
        """What the person answered at the steps before this one, by step id, in the protocol's order."""
        answers = state["answers"]
        return {s.id: answers[s.id]["answer"] for s in proto.steps
                if s.id != current and answers.get(s.id, {}).get("answer")}

    def keep(self, state: dict, text: str) -> None:
        """Keep a message that carried risk where it belongs, and stop: no follow-up, no idea offered.

        The words become the step's answer (or the follow-up's), and the reflection moves on to the
        next question without asking it, so /resume or "Carry on" goes on from there.
        """
        self._touch(state)
        proto = self.protocol(state)
        step = proto.steps[min(state["step"], len(proto.steps) - 1)]
        if state["phase"] == "followup":
            state["answers"][step.id]["followup_answer"] = text
        else:
            state["answers"][step.id] = {"question": step.question, "answer": text}
        state["step"] += 1
        state["phase"] = "answer"
        if state["step"] >= len(proto.steps):
            self._prepare_review(state, proto, self._build(state, proto))

    def can_keep(self, state: dict) -> bool:
        """Whether a typed message now is an answer (rather than a summary edit or a review reply)."""
        return state["phase"] in ("answer", "followup")

    async def _advance(self, user: str, state: dict) -> list[Reply]:
        proto = self.protocol(state)
        replies = self._maybe_literature(user, state, proto)
        state["step"] += 1
        state["phase"] = "answer"
        if state["step"] < len(proto.steps):
            return replies + [self._question(state)]
        return replies + await self._review(user, state, proto)

    def _maybe_literature(self, user: str, state: dict, proto: Protocol) -> list[Reply]:
        """One idea from the literature, once, after the user has given their own reading."""
        ctx = self.ctx
        if state.get("suggested") or not ctx.settings.offer_literature or ctx.literature is None:
            return []
        if not any(s.own_reading for s in proto.steps[: state["step"] + 1]):
            return []  # not yet: the person hasn't given their own reading of the meeting
        try:
            found = self._best_idea(user, state, proto)
        except Exception:  # the literature is a nicety: the reflection goes on without it
            return []
        state["suggested"] = True
        if found is None:
            return []
        state["suggestion"] = f"{found.title}, {found.citation}"
        state["suggestion_similarity"] = round(found.similarity, 4)  # read by `spanner eval`
        return [Reply(ctx.say("literature", idea=found.idea, title=found.title, citation=found.citation))]

    def _best_idea(self, user: str, state: dict, proto: Protocol):
        """The card that best fits what the person typed at the steps it speaks to, if any fits."""
        avoid = self._last_card(user)
        themed = [s for s in proto.steps if s.literature_themes]
        if not themed:
            query = self._own_words(state)
            return self.ctx.literature.suggest(self.ctx.trim(query), avoid=avoid) if query.strip() else None
        best = None
        for step in themed:
            a = state["answers"].get(step.id, {})
            words = " ".join(t for t in (a.get("answer", "") if a.get("answer") not in step.options else "",
                                         a.get("followup_answer", "")) if t)
            if not words.strip():
                continue
            found = self.ctx.literature.suggest(self.ctx.trim(words), avoid=avoid, themes=step.literature_themes)
            if found is not None and (best is None or found.similarity > best.similarity):
                best = found
        return best

    def _last_card(self, user: str) -> tuple[str, ...]:
        """The idea offered in the person's last reflection: not offered again straight away."""
        for entry in self.ctx.journal.list_entries(user, 5):
            if entry.kind == "reflection" and entry.suggestion:
                return (entry.suggestion,)
            if entry.kind == "reflection":
                return ()
        return ()

    def _answered(self, state: dict, proto: Protocol) -> list[tuple[Step, dict]]:
        return [(s, state["answers"][s.id]) for s in proto.steps
                if s.id in state["answers"] and state["answers"][s.id].get("answer")]

    def _build(self, state: dict, proto: Protocol) -> str:
        """The summary in the person's own words (bot/engine/summary.py)."""
        parts = [Part(s.title, a["answer"], a.get("followup_answer", ""), s.options)
                 for s, a in self._answered(state, proto)]
        if not parts:
            return self.ctx.say("summary_all_skipped")
        return build_summary(parts, self.ctx.say("summary_own_part"))

    def _prepare_review(self, state: dict, proto: Protocol, summary: str, generated: bool = False) -> None:
        answered = self._answered(state, proto)
        tags = [a["answer"].lower() for s, a in answered if a["answer"] in s.options]
        own = self._own_words(state)
        if self.ctx.literature is not None and own.strip():
            try:
                tags += [t for t in self.ctx.literature.themes(self.ctx.trim(own)) if t not in tags]
            except Exception:
                pass
        state.update(phase="review", summary=summary, summary_generated=generated, tags=tags[:6])
        state["step"] = len(proto.steps)

    async def _review(self, user: str, state: dict, proto: Protocol) -> list[Reply]:
        answered = self._answered(state, proto)
        built = self._build(state, proto)
        notices: list[Reply] = []
        summary, generated = built, False
        if answered:
            block = "\n".join(f"- {s.title}: {self.ctx.trim(' '.join(a['answer'].split()))[:300]}"
                              for s, a in answered)
            summary, generated = await self.ctx.summary(user, built, block, self._source(state), notices)
        self._prepare_review(state, proto, summary, generated)
        return notices + [self._proposal(state)]

    def carry_on(self, state: dict) -> list[Reply]:
        """After a pause offer: the next question, or the summary if every question is answered."""
        self._touch(state)
        if state["phase"] in ("review", "edit_summary"):
            state["phase"] = "review"
            return [self._proposal(state)]
        return [self._question(state)]

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
