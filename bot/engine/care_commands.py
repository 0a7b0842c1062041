"""Care as a flow: the risk screen at the engine's seam, the Pause/Carry on buttons, and what is typed next.

Every text a person writes reaches `screen` before anything else reads it (the
engine's `_before_text`). When the screen (care.py, risk.py) finds urgent risk
or distress, our own human-written reply goes first and the person's words are
kept where they were going:

- an answer in a reflection becomes that step's answer, the questions stop
  (no follow-up, no idea from the literature) and "Carry on" or /resume goes on;
- a plain message becomes a quick note, and the reply says so;
- a command (/note, /reply) or the text a pending action waits for (an edit, a
  comment, a reply they chose to send) is handled exactly as usual, after the
  care reply.

Nothing is told to anyone else and nothing is logged.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from .care import CARE, CARRY_ON, PAUSE
from .context import Context
from .inputs import parse_command
from .journal_commands import JournalCommands
from .records import Reply
from .reflection import Reflection
from .registry import Call, Registry

GoOn = Callable[[], Awaitable[list[Reply]]]


class CareCommands:
    def __init__(self, ctx: Context, reflection: Reflection, journal: JournalCommands):
        self.ctx, self.reflection, self.journal = ctx, reflection, journal

    def register(self, r: Registry) -> None:
        r.button(CARE, lambda call: self.choose(call.user, call.values[0], call.state))
        r.on_pending("care", self.typed_after_care)

    async def screen(self, user: str, text: str, state: dict, go_on: GoOn, answer: bool = True) -> list[Reply]:
        """Screen one message; handle it as usual (go_on) unless it carries risk.

        `answer` is False for words that cannot be an answer (a forwarded message): with risk they
        are kept as usual, after the care reply.
        """
        care = self.ctx.care
        command = parse_command(text)
        reflect = state.get("reflect")
        # Earlier answers prime the screen: a vague "I can't go on" after "nobody would notice" is not vague.
        earlier = self.reflection.written(reflect) if reflect else ""
        level = care.level(command.args if command is not None else text, earlier)
        if level is None:
            return await go_on()
        pending = state.get("pending")
        if answer and command is None and (pending is None or pending["action"] == "care"):
            state.pop("pending", None)
            if reflect and pending is None and not self.ctx.is_idle(reflect["touched"]) \
                    and self.reflection.can_keep(reflect):
                self.reflection.keep(reflect, text)  # the questions stop; "Carry on" or /resume goes on
                state["pending"] = {"action": "care"}
                return [care.reply(level)]
            saved = self.journal.store_note(user, text)
            return [care.reply(level), care.note_kept(saved.number)]
        return [care.reply(level)] + await go_on()

    def choose(self, user: str, choice: str, state: dict) -> list[Reply]:
        """"Pause here" or "Carry on" after the care reply (a button, or the words typed)."""
        if (state.get("pending") or {}).get("action") == "care":
            state.pop("pending", None)
        reflect = state.get("reflect")
        if choice == PAUSE:
            return [self.ctx.care.paused(bool(reflect))]
        if reflect:
            return [self.ctx.care.carrying_on(True)] + self.reflection.carry_on(reflect)
        return [self.ctx.care.carrying_on(False)]

    def typed_after_care(self, call: Call) -> list[Reply]:
        """After the care reply: "carry on" or "pause" typed; anything else is kept, questions still paused."""
        word = self.ctx.care.answer_word(call.args)
        if word is not None:
            return self.choose(call.user, word, call.state)
        call.state.pop("pending", None)
        return self.journal.save_note(call.user, call.args, call.state)
