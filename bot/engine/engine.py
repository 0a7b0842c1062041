"""The engine: events in, replies out. Pure: it reaches storage, model and literature only through ports.

Every transport (console, Telegram) hands the engine an Event and sends back
the Replies it returns, so the same transcript gives the same replies
everywhere. One user's events are handled one at a time, in order; different
users never wait for each other here.

The engine only dispatches. What each command, button and pending action does
is declared once by its flow module in the registry (registry.py), and /help
and the Telegram command menu are generated from it. Every text a person
writes passes one seam, `_before_text`, before any command, pending action or
flow sees it: the risk screen (care_commands.py) sits there.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections import defaultdict
from dataclasses import replace
from zoneinfo import ZoneInfo

from .care_commands import CareCommands
from .context import Context, current_tz
from .general_commands import GeneralCommands
from .inputs import clean, is_blank, parse_command, problem_with
from .insight_commands import InsightCommands
from .journal_commands import JournalCommands
from .mentoring_commands import MentoringCommands
from .records import Choice, Event, Reply
from .reflection import Reflection
from .reflection_commands import ReflectionCommands
from .registry import Call, Registry, run
from .reply_commands import ReplyCommands
from .sharing_commands import SharingCommands
from .unit import UnitOfWork, current_unit
from .voice_commands import VoiceCommands

log = logging.getLogger(__name__)

MEDIA_KINDS = {"sticker", "photo", "voice", "document"}


def _disk_full(exc: BaseException) -> bool:
    """Storage says there is no space left (it raises an OSError with ENOSPC: storage.db.StorageFull)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Engine:
    """Spanner's conversation logic. Build it once, at start-up, in bot.compose."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.registry = Registry()
        self.reflection = Reflection(ctx)
        self.journal = JournalCommands(ctx)
        self.replies = ReplyCommands(ctx)
        self.sharing = SharingCommands(ctx, self.journal)
        self.mentoring = MentoringCommands(ctx, self.reflection, self.journal, self.replies)
        self.reflecting = ReflectionCommands(ctx, self.reflection, self.mentoring)
        self.general = GeneralCommands(ctx, self.registry, self.reflection, self.mentoring, self.sharing)
        self.care = CareCommands(ctx, self.reflection, self.journal)
        self.insights = InsightCommands(ctx, self.journal)
        self.voice = VoiceCommands(ctx, self._use_text)
        # "/note NAME TEXT" to a mentee or mentor is a note to them, not a quick note.
        self.journal.addressed = self.mentoring.addressed_note
        for flow in (self.general, self.reflecting, self.journal, self.sharing, self.mentoring, self.replies,
                     self.care, self.voice, self.insights):
            flow.register(self.registry)
        # Typed text nothing else claims (no reflection going on) is kept as a quick note: always last.
        self.registry.on_text(self.journal.quick_note)
        self.registry.check(ctx.prompts.commands, ctx.prompts.commands_file)
        # Notices come with the next answer, unless the transport pushes them itself (Telegram does).
        self.show_notices = True
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def menu(self) -> list[tuple[str, str]]:
        """(command, a few words) for every command, for a transport's command menu."""
        texts = self.ctx.prompts.commands
        return [(c.name, texts[c.name].menu) for c in self.registry.ordered(texts)]

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
        self.ctx.search_index.sweep()  # search indexes idle too long leave memory (search_index.py)
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
            replies = [r for r in await self._dispatch(event, state) if r.text]
            # Notices (a check-in, a comment, a note) first; read after handling, so one this
            # event caused (a check-in due on /checkins) comes with it. Removed with the commit.
            replies = self._notices(event.user, unit) + replies
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

    def _notices(self, user: str, unit: UnitOfWork) -> list[Reply]:
        """What waits for this person, each with its own buttons; marked shown in this event's commit."""
        notices = self.ctx.notices.pending(user) if self.ctx.notices is not None and self.show_notices else []
        if notices:
            unit.notices_seen(user, [n.id for n in notices])
        return [Reply(n.payload["text"], tuple(Choice(label, data) for label, data in n.payload.get("choices", [])))
                for n in notices]

    # ----- dispatch -----------------------------------------------------------------------------

    async def _dispatch(self, event: Event, state: dict) -> list[Reply]:
        if event.choice is not None:
            return await self._on_button(event, state)
        if event.kind != "text":
            return await self._on_other_kind(event, state)
        problem = problem_with(event.text, self.ctx.settings.max_message_chars)
        if problem:
            key, values = problem
            return [Reply(self.ctx.say(key, **values))]
        text = clean(event.text)
        return await self._before_text(event.user, text, state, lambda: self._after_screen(event, state, text))

    async def _before_text(self, user: str, text: str, state: dict, go_on, answer: bool = True) -> list[Reply]:
        """THE seam: every text a person writes passes here first, and nothing reads it before.

        Reflection and follow-up answers, check-in answers, quick notes, /note and /reply,
        comments, edits, captions and forwarded messages all arrive here, commands included,
        before any command, pending action or flow sees them. The risk screen answers words
        that carry risk with care first and keeps them where they were going; everything
        else goes on (`go_on`) to be handled as usual.
        """
        return await self.care.screen(user, text, state, go_on, answer)

    async def _use_text(self, call: Call, text: str) -> list[Reply]:
        """Words the person chose to use (a transcript): the same path as typed text, never a command."""
        problem = problem_with(text, self.ctx.settings.max_message_chars)
        if problem:
            return [Reply(self.ctx.say(problem[0], **problem[1]))]
        event = replace(call.event, text=text, choice=None)
        return await self._before_text(call.user, text, call.state, lambda: self._plain(event, call.state, text))

    async def _after_screen(self, event: Event, state: dict, text: str) -> list[Reply]:
        """A screened text: a command, or typed text for a pending action or a flow."""
        command = parse_command(text)
        if command is not None:
            found = self.registry.commands.get(command.name)
            if found is None:
                return [Reply(self.ctx.say("unknown_command", command=f"/{command.name}"))]
            return await run(found.handler, Call(event.user, state, event, args=command.args)) or []
        return await self._plain(event, state, text)

    async def _plain(self, event: Event, state: dict, text: str) -> list[Reply]:
        """Typed text: the pending action's, if one waits; else the first text handler that claims it."""
        call = Call(event.user, state, event, args=text, again=lambda: self._plain(event, state, text))
        pending = state.get("pending")
        if pending:
            handler = self.registry.pending.get(pending.get("action"))
            if handler is not None:
                return await run(handler, call) or []
            state.pop("pending")  # an action this version no longer knows: let the message stand on its own
        for handler in self.registry.texts:
            replies = await run(handler, call)
            if replies is not None:
                return replies
        return []

    async def _on_button(self, event: Event, state: dict) -> list[Reply]:
        found = self.registry.find_button(event.choice)
        if found is None:
            # A stale or forged button: say what we can do instead of guessing.
            return [Reply(self.ctx.say("choose_option"))]
        handler, values = found
        return await run(handler, Call(event.user, state, event, values=values)) or []

    async def _on_other_kind(self, event: Event, state: dict) -> list[Reply]:
        """Stickers, photos, voice, files, edits, forwards: keep what is words, explain the rest."""
        if event.kind == "edited":
            return [Reply(self.ctx.say("edited_message"))]
        if event.kind == "voice" and event.audio is not None:
            replies = await self.voice.received(event, state)
            if not is_blank(event.text):  # a caption: words we can keep, handled like any message
                replies += await self._dispatch(Event(user=event.user, text=event.text, id=event.id), state)
            return replies
        if event.kind == "forwarded":
            if is_blank(event.text):
                return [Reply(self.ctx.say("unsupported_media"))]
            text = self.ctx.say("forwarded_note", text=clean(event.text))
            user = event.user

            async def keep() -> list[Reply]:
                return self.journal.save_note(user, text, state)
            # Someone else's words are never an answer: with risk they are kept as usual, after the care reply.
            return await self._before_text(user, text, state, keep, answer=False)
        notice = Reply(self.ctx.say(f"{event.kind}_received" if event.kind in MEDIA_KINDS
                                    else "unsupported_media"))
        if not is_blank(event.text):  # a caption: words we can keep, handled like any message
            return [notice] + await self._dispatch(Event(user=event.user, text=event.text, id=event.id), state)
        return [notice]
