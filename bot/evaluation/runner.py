"""Drives the real engine through every dev-set case, as a person would, and records what it said.

Each case gets its own person in a throwaway data directory (real SQLite, the real literature
index, the real model where the strategy asks it). Answers are typed or pressed as buttons, a
follow-up is answered when the case says how and skipped otherwise, "Carry on" is pressed after a
care reply, and the summary is saved. Nothing here judges: it only records (bot/evaluation/report.py
measures).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bot.engine.care import CARE, CARRY_ON
from bot.engine.records import Event, Reply

from .cases import Case


@dataclass
class Message:
    """One thing the person sent that carries words, and whether a care reply came back."""

    case: str
    kind: str
    key: str  # step id, "followup:<step>", or "note"
    expected: str | None
    detected: str | None


@dataclass
class Asked:
    """One follow-up question the bot asked."""

    case: str
    kind: str
    step: str
    step_question: str
    answer: str
    question: str
    source: str
    seconds: float
    source_text: str  # everything the person had written in the reflection so far
    pressed: bool = False  # the answer was a button (whatever wrote the question after it)


@dataclass
class CaseRun:
    case: Case
    summary: str = ""
    summary_source: str = ""
    suggestion: str = ""  # "title, citation" of the card offered, if any
    suggestion_similarity: float = 0.0
    messages: list[Message] = field(default_factory=list)
    asked: list[Asked] = field(default_factory=list)


class CaseRunner:
    """Runs cases against one composed app (bot.compose.App)."""

    def __init__(self, app, protocol: str = "after_meeting"):
        self.app = app
        self.engine = app.engine
        self.journal = app.journal
        self.protocol = app.prompts.protocols[protocol]
        words = app.prompts.safety.reply
        self._care = {"urgent": words.urgent, "distress": words.distress}

    def _detected(self, replies: list[Reply]) -> str | None:
        for reply in replies:
            for level, text in self._care.items():
                if reply.text.startswith(text):
                    return level
        return None

    async def _send(self, user: str, text: str | None = None, choice: str | None = None) -> tuple[list[Reply], float]:
        started = time.perf_counter()
        replies = await self.engine.handle(Event(user=user, text=text or "", choice=choice))
        return replies, time.perf_counter() - started

    async def run(self, case: Case) -> CaseRun:
        user = f"console:eval-{case.id}"
        out = CaseRun(case)
        if case.mode == "note":
            replies, _ = await self._send(user, case.note)
            out.messages.append(Message(case.id, case.kind, "note", case.expected("note"), self._detected(replies)))
            return out
        await self._send(user, "/reflect")
        written: list[str] = []
        for index, step in enumerate(self.protocol.steps):
            state = self.journal.load_state(user).get("reflect")
            if state is None or state["phase"] == "review":
                break
            if state["step"] != index:
                continue  # a care reply moved the reflection on; this step was answered already
            value = case.answer(step.id)
            if value is None:
                await self._send(user, "/skip")
                continue
            written.append(value)
            if value in step.options:
                replies, seconds = await self._send(user, choice=f"r:opt:{step.options.index(value)}")
                detected = None
            else:
                replies, seconds = await self._send(user, value)
                detected = self._detected(replies)
                out.messages.append(Message(case.id, case.kind, step.id, case.expected(step.id), detected))
            if detected is not None:
                await self._send(user, choice=CARE.data(CARRY_ON))
                continue
            state = self.journal.load_state(user).get("reflect") or {}
            answer = (state.get("answers") or {}).get(step.id, {})
            if state.get("phase") == "followup" and answer.get("followup_question"):
                out.asked.append(Asked(case.id, case.kind, step.id, step.question, value,
                                       answer["followup_question"], answer.get("followup_source", "?"),
                                       seconds, "\n".join(written), value in step.options))
                reply_text = case.followup_answers.get(step.id)
                if reply_text is None:
                    await self._send(user, "/skip")
                else:
                    written.append(reply_text)
                    key = f"followup:{step.id}"
                    replies, _ = await self._send(user, reply_text)
                    detected = self._detected(replies)
                    out.messages.append(Message(case.id, case.kind, key, case.expected(key), detected))
                    if detected is not None:
                        await self._send(user, choice=CARE.data(CARRY_ON))
        state = self.journal.load_state(user).get("reflect")
        for _ in range(len(self.protocol.steps) + 2):  # anything left (a skipped tail) up to the summary
            if state is None or state["phase"] == "review":
                break
            await self._send(user, "/skip")
            state = self.journal.load_state(user).get("reflect")
        if state is not None:
            out.summary = state.get("summary", "")
            out.summary_source = "\n".join(written)
            out.suggestion = state.get("suggestion", "")
            out.suggestion_similarity = float(state.get("suggestion_similarity", 0.0))
            await self._send(user, "save")
        return out
