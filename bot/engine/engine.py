"""The engine: events in, replies out. Pure: it reaches storage, model and literature only through ports.

Every transport (console now, Telegram next) hands the engine an Event and
sends back the Replies it returns, so the same transcript gives the same
replies everywhere. One user's events are handled one at a time, in order;
different users never wait for each other here.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections import defaultdict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .context import Context, current_tz
from .inputs import Command, clean, is_blank, parse_command, problem_with
from .journal_commands import JournalCommands
from .records import Choice, Entry, Event, Reply
from .reflection import Reflection, first_sentence
from .mentoring_commands import MentoringCommands
from .sharing_commands import SharingCommands
from .unit import UnitOfWork, current_unit

log = logging.getLogger(__name__)

# Commands that only mean something inside a reflection.
REFLECTION_COMMANDS = {"skip", "back"}
MEDIA_KINDS = {"sticker", "photo", "voice", "document"}


def _disk_full(exc: BaseException) -> bool:
    """Storage says there is no space left (it raises an OSError with ENOSPC: storage.db.StorageFull)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Engine:
    """Spanner's conversation logic. Build it once, at start-up, in bot.compose."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.reflection = Reflection(ctx)
        self.journal = JournalCommands(ctx)
        self.sharing = SharingCommands(ctx, self.journal)
        self.mentoring = MentoringCommands(ctx, self.reflection)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle(self, event: Event) -> list[Reply]:
        """Handle one event for one user; replies are in the order to send them."""
        async with self._locks[event.user]:
            try:
                return await self._handle(event)
            except Exception as exc:
                # Storage failed (a full disk, a lost key): nothing from this event was kept, and the
                # person is told so instead of being told "saved". The type and frames go to the log.
                log.error("could not keep an event: %s", type(exc).__name__, exc_info=exc)
                return [Reply(self.ctx.say("not_saved_disk_full" if _disk_full(exc) else "not_saved"))]

    async def _handle(self, event: Event) -> list[Reply]:
        store = self.ctx.store
        if store.ensure_user(event.user, event.display_name) is False:
            return [Reply(self.ctx.say("access_removed"))]  # revoked: nothing is read or kept
        state = store.load_state(event.user)
        last = state.get("last_event") or {}
        if event.id is not None and last.get("id") == event.id:
            # A redelivered event: it was handled and committed already. Same replies, no new action.
            return [Reply.from_dict(r) for r in last.get("replies", [])]
        before = repr(state)
        unit = UnitOfWork(store, event.user)
        zone = store.get_timezone(event.user)
        tokens = (current_unit.set(unit), current_tz.set(ZoneInfo(zone) if zone else None))
        try:
            replies = self._notifications(event.user) + \
                [r for r in await self._dispatch(event, state) if r.text]
        except Exception as exc:
            # Log the type and frames only: never the text a user wrote (promise 13). Nothing is committed.
            log.error("engine error %s while handling an event", type(exc).__name__, exc_info=exc)
            return [Reply(self.ctx.say("not_saved_disk_full" if _disk_full(exc) else "error"))]
        finally:
            current_unit.reset(tokens[0])
            current_tz.reset(tokens[1])
        if state.get("_forgotten"):
            return replies  # everything about this person is gone: write nothing back
        if event.id is not None:
            state["last_event"] = {"id": event.id, "replies": [r.to_dict() for r in replies]}
        if unit.ops or repr(state) != before:
            store.apply(event.user, unit.ops, state)
        return replies

    def _notifications(self, user: str) -> list[Reply]:
        """Messages from others (a supervisor's comment) not yet delivered: shown first."""
        if self.ctx.sharing is None:
            return []
        return [Reply(n["text"], tuple(Choice(label, data) for label, data in n.get("choices", [])))
                for n in self.ctx.sharing.take_notifications(user)]

    async def _dispatch(self, event: Event, state: dict) -> list[Reply]:
        if event.choice is not None:
            return await self._on_choice(event.user, event.choice, state)
        if event.kind != "text":
            return await self._on_other_kind(event, state)
        problem = problem_with(event.text, self.ctx.settings.max_message_chars)
        if problem:
            key, values = problem
            return [Reply(self.ctx.say(key, **values))]
        text = clean(event.text)
        command = parse_command(text)
        if command is not None:
            return await self._on_command(event, command, state)
        return await self._on_text(event.user, text, state)

    # ----- commands ---------------------------------------------------------

    async def _on_command(self, event: Event, cmd: Command, state: dict) -> list[Reply]:
        user, name, args = event.user, cmd.name, cmd.args
        reflect = state.get("reflect")
        if name == "start":
            return self.greet(event, state)
        if name == "help":
            return [Reply(self.ctx.say("help"))]
        if name == "privacy":
            return [Reply(self.ctx.say("privacy", data_dir=self.ctx.settings.data_dir_label))]
        if name == "reflect":
            state.pop("pending", None)
            return self.reflection.start(user, state)
        if name == "resume":
            if not reflect:
                return self.mentoring.resume_schedule(user) or [Reply(self.ctx.say("nothing_to_resume"))]
            state.pop("pending", None)
            return self.reflection.resume(reflect)
        if name == "cancel":
            if state.pop("pending", None):
                return [Reply(self.ctx.say("edit_cancelled"))]
            if state.pop("reflect", None):
                return [Reply(self.ctx.say("cancelled"))]
            return [Reply(self.ctx.say("nothing_to_cancel"))]
        if name == "skip" and not reflect:
            return self.mentoring.skip(user)
        if name in REFLECTION_COMMANDS:
            if not reflect:
                return [Reply(self.ctx.say("not_in_reflection", command=f"/{name}"))]
            if name == "skip":
                return await self.reflection.skip(user, reflect)
            return self.reflection.back(reflect)
        if name == "note":
            if is_blank(args):
                return [Reply(self.ctx.say("note_usage"))]
            first, _, rest = args.partition(" ")
            mentee = self.mentoring.mentee_named(user, first) if rest.strip() else None
            if mentee is not None:  # a mentor writing to their mentee, not a quick note
                return self.mentoring.note_to_mentee(user, mentee, rest.strip())
            return self._save_note(user, args, state)
        if name == "journal":
            return self.journal.journal(user)
        if name == "show":
            return self.journal.show(user, args)
        if name == "edit":
            return self.journal.edit(user, args, state)
        if name == "delete":
            return self.journal.delete(user, args, state)
        if name == "search":
            return self.journal.search(user, args)
        if name == "timezone":
            return self._timezone(user, args)
        if name == "share":
            return self.sharing.share(user, args, state)
        if name == "unshare":
            return self.sharing.unshare(user, args)
        if name == "shared":
            return self.sharing.shared(user)
        if name == "access":
            return self.sharing.access(user)
        if name == "team":
            return self.sharing.team(user)
        if name == "review":
            return self.sharing.review(user)
        if name == "export":
            return self.sharing.export(user)
        if name == "forget":
            return self.sharing.forget(user, state)
        if name == "checkins":
            return self.mentoring.checkins(user, args)
        if name == "snooze":
            return self.mentoring.snooze(user, args)
        if name == "pause":
            return self.mentoring.pause(user, args)
        if name == "remind":
            return self.mentoring.remind(user, args)
        if name == "mentees":
            return self.mentoring.mentees(user)
        return [Reply(self.ctx.say("unknown_command", command=f"/{name}"))]

    async def _on_other_kind(self, event: Event, state: dict) -> list[Reply]:
        """Stickers, photos, voice, files, edits, forwards: keep what is words, explain the rest."""
        if event.kind == "edited":
            return [Reply(self.ctx.say("edited_message"))]
        if event.kind == "forwarded":
            if is_blank(event.text):
                return [Reply(self.ctx.say("unsupported_media"))]
            return self._save_note(event.user, f"(forwarded) {clean(event.text)}", state)
        notice = Reply(self.ctx.say(f"{event.kind}_received" if event.kind in MEDIA_KINDS
                                    else "unsupported_media"))
        if not is_blank(event.text):  # a caption: words we can keep, handled like any message
            return [notice] + await self._dispatch(Event(user=event.user, text=event.text, id=event.id), state)
        return [notice]

    def _timezone(self, user: str, args: str) -> list[Reply]:
        zone = args.strip()
        if not zone:
            current = self.ctx.journal.get_timezone(user) or self.ctx.settings.timezone
            return [Reply(self.ctx.say("timezone_current", zone=current))]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return [Reply(self.ctx.say("timezone_unknown", zone=zone[:60]))]
        self.ctx.journal.set_timezone(user, zone)
        return [Reply(self.ctx.say("timezone_set", zone=zone))]

    def greet(self, event: Event, state: dict) -> list[Reply]:
        name = event.display_name or event.user.split(":", 1)[-1]
        if event.onboarding:
            zone = self.ctx.settings.timezone
            return [Reply(self.ctx.say("onboarding", name=name)),
                    Reply(self.ctx.say("onboarding_timezone", zone=zone),
                          (Choice(zone, f"tz:{zone}"), Choice("Another time zone", "tz:other")))]
        replies = [Reply(self.ctx.say("welcome", name=name))]
        if state.get("reflect"):
            replies.append(Reply(self.ctx.say("pending_at_start",
                                              **self.reflection.describe_pending(state["reflect"]))))
        return replies

    # ----- choices (buttons) ------------------------------------------------

    async def _on_choice(self, user: str, data: str, state: dict) -> list[Reply]:
        reflect = state.get("reflect")
        if data == "r:resume" and reflect:
            return self.reflection.resume(reflect)
        if data == "r:restart":
            return self.reflection.restart(user, state)
        if data.startswith("r:"):
            if not reflect:
                return [Reply(self.ctx.say("nothing_to_resume"))]
            replies, entry = await self.reflection.on_choice(user, reflect, data)
            return replies + self._finish(user, entry, state)
        if data == "ci:start":
            return self.mentoring.start(user, state)
        if data == "ci:snooze":
            return self.mentoring.snooze(user, "2h")
        if data == "ci:skip":
            return self.mentoring.skip(user)
        if data == "rm:reflect":
            return self.reflection.start(user, state)
        if data == "mn:reply":
            return self.mentoring.start_reply(user, state)
        if data.startswith("share:"):
            return self.sharing.on_choice(user, data, state)
        if data.startswith("forget:"):
            return self.sharing.forget_choice(user, data, state)
        if data.startswith("rv:") and data[3:].isdigit():
            return self.sharing.read(user, int(data[3:]))
        if data.startswith("cm:") and data[3:].isdigit():
            return self.sharing.start_comment(user, int(data[3:]), state)
        if data == "tz:other":
            return [Reply(self.ctx.say("timezone_other"))]
        if data.startswith("tz:"):
            return self._timezone(user, data[3:])
        parts = data.split(":")
        if parts[0] == "del" and len(parts) == 3 and parts[2].isdigit():
            return self.journal.confirm_delete(user, int(parts[2]), parts[1] == "yes", state)
        if parts[0] == "edit" and len(parts) >= 3 and parts[1].isdigit():
            return self.journal.choose_field(user, int(parts[1]), ":".join(parts[2:]), state)
        # A stale or forged button: say what we can do instead of guessing.
        return [Reply(self.ctx.say("choose_option"))]

    # ----- plain text -------------------------------------------------------

    async def _on_text(self, user: str, text: str, state: dict) -> list[Reply]:
        pending = state.get("pending")
        if pending and pending["action"] == "delete":
            word = text.strip().lower().rstrip(".!")
            yes = word in ("yes", "y", "delete", "yes, delete")
            replies = self.journal.confirm_delete(user, pending["number"], yes, state)
            if yes or word in ("no", "n", "keep", "no, keep it"):
                return replies
            # They moved on: keep the entry and treat this message as it stands.
            return replies + await self._on_text(user, text, state)
        if pending and pending["action"] == "mentor_reply":
            return self.mentoring.finish_reply(user, text, state)
        if pending and pending["action"] == "comment":
            return self.sharing.finish_comment(user, text, state)
        if pending and pending["action"] in ("share", "forget"):
            state.pop("pending", None)  # they moved on: nothing is shared or erased by a stray message
            return [Reply(self.ctx.say("share_cancelled" if pending["action"] == "share" else "forget_kept"))] + \
                await self._on_text(user, text, state)
        if pending and pending["action"] == "edit":
            if pending.get("field") is None:
                return self.journal.pick_field_by_text(user, text, state)
            return self.journal.apply_edit(user, text, state)
        reflect = state.get("reflect")
        if reflect and not self.ctx.is_idle(reflect["touched"]):
            replies, entry = await self.reflection.on_text(user, reflect, text)
            return replies + self._finish(user, entry, state)
        return self._save_note(user, text, state)

    def _finish(self, user: str, entry: Entry | None, state: dict) -> list[Reply]:
        """Save a confirmed reflection; only then drop its in-progress state."""
        if entry is None:
            return []
        state.pop("reflect", None)
        # Entry and cleared state commit together: a crash can't leave both or neither.
        saved = self.ctx.journal.add_entry(user, entry, self.ctx.embed(entry.full_text()), state=state)
        if entry.week is not None:
            self.mentoring.answered(user, entry.week)
        return [Reply(self.ctx.say("reflection_saved", number=saved.number))]

    def _save_note(self, user: str, text: str, state: dict) -> list[Reply]:
        entry = Entry(kind="note", note=text, title=first_sentence(text, 80))
        saved = self.ctx.journal.add_entry(user, entry, self.ctx.embed(text))
        if state.get("reflect"):
            started = self.reflection.describe_pending(state["reflect"])["started"]
            return [Reply(self.ctx.say("note_saved_with_pending", number=saved.number, started=started))]
        return [Reply(self.ctx.say("note_saved", number=saved.number))]
