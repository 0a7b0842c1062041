"""Answering someone: /reply and the Reply, Answer and Comment buttons on notes and comments.

Two kinds of thread reach a person: comments on an entry they shared (with
their supervisor) and notes with their mentor or mentee. An answer goes into
its thread (kept with the entry, or with the pairing), the other person is told
at once, and it is never saved as a stray quick note. /reply TEXT answers the
newest thing someone said to you; /reply N TEXT answers the comments on your
entry N; /reply alone (or a button) asks for the answer next.
"""

from __future__ import annotations

from .context import Context
from .inputs import is_blank, parse_number
from .records import Reply
from .registry import Button, Call, Registry

#: Answer in a thread: "s" and a share's id (comments on a shared entry), or "p" and a mentoring pairing's id.
REPLY = Button("re", r"(s|p):(\d{1,9})")


class ReplyCommands:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def register(self, r: Registry) -> None:
        r.command("reply", self.reply)
        r.button(REPLY, lambda call: self.ask(call, call.values[0], int(call.values[1])))
        r.on_pending("reply", self.answer_pending)

    # ----- finding the thread -------------------------------------------------------------------

    def _latest(self, user: str) -> tuple[str, int] | None:
        """The thread of the newest thing someone else said to this person."""
        comment = self.ctx.sharing.latest_to(user) if self.ctx.sharing is not None else None
        note = self.ctx.mentoring.latest_note_to(user) if self.ctx.mentoring is not None else None
        if comment is None and note is None:
            return None
        if note is None or (comment is not None and comment.when >= note.when):
            return "s", comment.share_id
        return "p", note.pairing_id

    def _other(self, user: str, kind: str, thread: int) -> str | None:
        """The name of the other person in this thread, if this person is in it and it is still open."""
        if kind == "s":
            return self.ctx.sharing.other_party(user, thread) if self.ctx.sharing is not None else None
        pairing = self.ctx.mentoring.pairing_by_id(thread, user) if self.ctx.mentoring is not None else None
        if pairing is None:
            return None
        return pairing.mentee_name if pairing.mentor == user else pairing.mentor_name

    # ----- /reply and the buttons ---------------------------------------------------------------

    def reply(self, call: Call) -> list[Reply]:
        args = call.args.strip()
        first, _, rest = args.partition(" ")
        number = parse_number(first) if first else None
        if number is not None and self.ctx.sharing is not None:
            on_entry = self.ctx.sharing.latest_to(call.user, number)
            if on_entry is not None:
                return self.to_thread(call, "s", on_entry.share_id, rest.strip())
            if not rest.strip():
                return [Reply(self.ctx.say("reply_no_thread", number=number))]
        target = self._latest(call.user)
        if target is None:
            return [Reply(self.ctx.say("reply_nothing"))]
        return self.to_thread(call, *target, args)

    def to_thread(self, call: Call, kind: str, thread: int, text: str) -> list[Reply]:
        if is_blank(text):
            return self.ask(call, kind, thread)
        return self.post(call.user, kind, thread, text)

    def ask(self, call: Call, kind: str, thread: int) -> list[Reply]:
        name = self._other(call.user, kind, thread)
        if name is None:
            return [Reply(self.ctx.say("reply_closed"))]
        call.state["pending"] = {"action": "reply", "kind": kind, "thread": thread}
        return [Reply(self.ctx.say("reply_prompt", name=name))]

    def answer_pending(self, call: Call) -> list[Reply]:
        pending = call.state.pop("pending")
        return self.post(call.user, pending["kind"], pending["thread"], call.args)

    # ----- posting ------------------------------------------------------------------------------

    def post(self, user: str, kind: str, thread: int, text: str) -> list[Reply]:
        """Add to the thread and tell the other person, with a button to answer in turn."""
        say = self.ctx.say
        name = self.ctx.journal.display_name(user)
        if kind == "s":
            posted = self.ctx.sharing.comment(user, thread, text) if self.ctx.sharing is not None else None
            if posted is None:
                return [Reply(say("reply_closed"))]
            key = "comment_from_supervisor" if posted.by_reader else "comment_from_author"
            notice = {"text": say(key, name=name, number=posted.number, text=text),
                      "choices": [[say("button_answer"), REPLY.data("s", thread)]]}
            kind_of_notice = "comment"
        else:
            posted = self.ctx.mentoring.post(user, thread, text) if self.ctx.mentoring is not None else None
            if posted is None:
                return [Reply(say("reply_closed"))]
            key = "note_from_mentor" if posted.to_mentee else "note_from_mentee"
            notice = {"text": say(key, name=name, text=text),
                      "choices": [[say("button_reply"), REPLY.data("p", thread)]]}
            kind_of_notice = "note"
        self.ctx.notices.notify(posted.recipient, notice, kind=kind_of_notice, source=user)
        return [Reply(say("reply_sent", name=self.ctx.journal.display_name(posted.recipient)))]
