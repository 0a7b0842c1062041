"""The reflection's commands and buttons: /reflect, /resume, /skip, /back, /cancel, and typed answers.

The reflection itself (steps, follow-ups, summary, literature) lives in
reflection.py; this module declares how people drive it and saves a confirmed
reflection as a journal entry. Outside a reflection, /skip and /resume act on
this week's check-in and paused check-ins instead. /cancel asks before it drops
a reflection that already holds answers.
"""

from __future__ import annotations

from .context import Context
from .records import Choice, Entry, Reply
from .reflection import REFLECT, Reflection
from .registry import JOURNALING, Button, Call, Registry

#: "Drop the reflection?" after /cancel on one with answers.
CANCEL = Button("cx", r"(drop|keep)")
YES_WORDS = {"yes", "y", "drop", "drop it", "yes, drop it", "cancel"}
NO_WORDS = {"no", "n", "keep", "keep it", "no, keep it"}


class ReflectionCommands:
    def __init__(self, ctx: Context, reflection: Reflection, mentoring):
        self.ctx = ctx
        self.reflection = reflection
        self.mentoring = mentoring

    def register(self, r: Registry) -> None:
        r.command("reflect", self.reflect, JOURNALING)
        r.command("resume", self.resume, JOURNALING)
        r.command("skip", self.skip, JOURNALING)
        r.command("back", self.back, JOURNALING)
        r.command("cancel", self.cancel)
        r.button(REFLECT, self.on_button)
        r.button(CANCEL, lambda call: self._settle_cancel(call, call.values[0] == "drop"))
        r.on_pending("cancel", self.cancel_by_text)
        r.on_text(self.answer)

    # ----- commands -----------------------------------------------------------------------------

    def reflect(self, call: Call) -> list[Reply]:
        call.state.pop("pending", None)
        return self.reflection.start(call.user, call.state)

    def resume(self, call: Call) -> list[Reply]:
        reflect = call.state.get("reflect")
        if not reflect:
            return self.mentoring.resume_schedule(call.user) or [Reply(self.ctx.say("nothing_to_resume"))]
        call.state.pop("pending", None)
        return self.reflection.resume(reflect)

    async def skip(self, call: Call) -> list[Reply]:
        reflect = call.state.get("reflect")
        if not reflect:
            return self.mentoring.skip(call.user)
        return await self.reflection.skip(call.user, reflect)

    def back(self, call: Call) -> list[Reply]:
        reflect = call.state.get("reflect")
        if not reflect:
            return [Reply(self.ctx.say("not_in_reflection", command="/back"))]
        return self.reflection.back(reflect)

    def cancel(self, call: Call) -> list[Reply]:
        pending = call.state.pop("pending", None)
        if pending and pending["action"] == "cancel":
            return self._settle_cancel(call, False)
        if pending:
            return [Reply(self.ctx.say("edit_cancelled"))]
        reflect = call.state.get("reflect")
        if not reflect:
            return [Reply(self.ctx.say("nothing_to_cancel"))]
        if not any(a.get("answer") for a in reflect["answers"].values()):
            call.state.pop("reflect")
            return [Reply(self.ctx.say("cancelled"))]
        call.state["pending"] = {"action": "cancel"}
        say = self.ctx.say
        return [Reply(say("cancel_confirm", **self.reflection.describe_pending(reflect)),
                      (Choice(say("button_drop_reflection"), CANCEL.data("drop")),
                       Choice(say("button_keep_reflection"), CANCEL.data("keep"))))]

    def cancel_by_text(self, call: Call):
        word = call.args.strip().lower().rstrip(".!")
        if word in YES_WORDS or word in NO_WORDS:
            return self._settle_cancel(call, word in YES_WORDS)
        call.state.pop("pending", None)  # they moved on: the reflection stays, for /resume
        return self._then(call, [Reply(self.ctx.say("cancel_kept"))])

    async def _then(self, call: Call, replies: list[Reply]) -> list[Reply]:
        return replies + await call.again()

    def _settle_cancel(self, call: Call, drop: bool) -> list[Reply]:
        call.state.pop("pending", None)
        if not call.state.get("reflect"):
            return [Reply(self.ctx.say("nothing_to_cancel"))]
        if drop:
            call.state.pop("reflect")
            return [Reply(self.ctx.say("cancelled"))]
        return [Reply(self.ctx.say("cancel_kept"))]

    # ----- buttons and typed answers ------------------------------------------------------------

    async def on_button(self, call: Call) -> list[Reply]:
        action, reflect = call.values[0], call.state.get("reflect")
        if action == "new":
            return self.reflect(call)
        if action == "restart":
            return self.reflection.restart(call.user, call.state)
        if not reflect:
            return [Reply(self.ctx.say("nothing_to_resume"))]
        if action == "resume":
            return self.reflection.resume(reflect)
        replies, entry = await self.reflection.on_choice(call.user, reflect, call.event.choice)
        return replies + self.finish(call, entry)

    async def answer(self, call: Call) -> list[Reply] | None:
        """A typed message while a reflection is active (and not left idle): its next answer."""
        reflect = call.state.get("reflect")
        if not reflect or self.ctx.is_idle(reflect["touched"]):
            return None
        replies, entry = await self.reflection.on_text(call.user, reflect, call.args)
        return replies + self.finish(call, entry)

    def finish(self, call: Call, entry: Entry | None) -> list[Reply]:
        """Save a confirmed reflection; only then drop its in-progress state."""
        if entry is None:
            return []
        call.state.pop("reflect", None)
        # Entry and cleared state commit together: a crash can't leave both or neither.
        saved = self.ctx.journal.add_entry(call.user, entry, self.ctx.embed_entry(entry), state=call.state)
        if entry.week is not None:
            self.mentoring.answered(call.user, entry.week)
        return [Reply(self.ctx.say("reflection_saved", number=saved.number))]
