"""The Telegram bot: intake, a durable inbox, per-user handling through the engine, a durable outbox.

Flow of one message:
  1. intake: getUpdates (or a webhook POST) -> strangers get one fixed reply and
     nothing is stored; members' updates are stored, encrypted, in the inbox;
     only then is the batch acknowledged (the next getUpdates offset, or HTTP 200).
  2. dispatch: each user's stored updates are handled in order, different users
     concurrently, through python-telegram-bot's Application and the engine.
     The replies are queued in the outbox in the same transaction that marks the
     update handled. A redelivered update is recognised by its id.
  3. send: the outbox is sent chat by chat under flood control; on 429 the
     sender waits retry_after and tries again; a row stays until it is sent.

The three steps can run in separate processes on one database (Role): one
ingress receives, stores and sends (`--ingress-only`), and any number of
workers handle (`--worker`). A worker claims a person's chat before handling
it (storage.claims), so each chat is handled by one process at a time, in
order, while different chats run in parallel in different workers. Sending
stays with the ingress: one sender keeps Telegram's overall flood limit, and a
worker killed mid-run never leaves a message half sent. The default, one
process, does all three and claims chats the same way, so workers may be added
beside it.

Everything a member sees in their chat goes through that outbox, in order:
replies, check-ins, "you are waiting" notices and the partial text of a reply
being streamed (storage.transport explains how a stream is settled, also after
a crash). Only strangers and groups, about whom nothing is stored, are answered
directly.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from typing import Any

# python-telegram-bot 22 can give retry_after as seconds or as a timedelta; take the newer form now
# (flood.retry_after_seconds accepts both).
os.environ.setdefault("PTB_TIMEDELTA", "1")

from telegram import BotCommand, InputFile, LinkPreviewOptions, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.engine.context import current_partial_sink
from bot.engine.inputs import is_blank
from bot.engine.records import Event, Reply

from .audio import audio_clip, file_base_url
from .flood import FloodControl, retry_after_seconds
from .formatting import keyboard, split_text, strip_urls
from .ports import ChatClaims

log = logging.getLogger(__name__)

STORAGE_RETRY_SECONDS = 5.0  # after a storage failure (a full disk), before trying again
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
ONBOARDING = "spanner_onboarding"  # marks a stored update whose invite was redeemed at intake
EVERYTHING, INGRESS, WORKER = "all", "ingress", "worker"  # the roles of a process (module docstring)


def handle_of(user_id: int) -> str:
    return f"telegram:{user_id}"


class SpannerTelegram:
    """Composes the Telegram side around an App (engine, journal) and runs it."""

    def __init__(self, app, token: str, people, transport, claims: ChatClaims, role: str = EVERYTHING,
                 run_scheduler: bool = True):
        self.app = app
        self.cfg = app.config.telegram
        self.people = people
        self.transport = transport
        self.claims = claims
        self.role = role
        self.run_scheduler = run_scheduler
        # One process does everything: it may hold every chat. A worker leaves chats to the others.
        self.chats_at_once = 10_000 if role == EVERYTHING else self.cfg.worker_chats
        self.say = app.prompts.say
        self.flood = FloodControl(self.cfg.per_chat_per_second, self.cfg.per_chat_burst,
                                  self.cfg.global_per_second)
        self.application: Application = (
            ApplicationBuilder().token(token).base_url(self.cfg.base_url)
            .base_file_url(file_base_url(self.cfg.base_url)).updater(None)
            .connection_pool_size(64).pool_timeout(30.0)
            .get_updates_read_timeout(self.cfg.poll_timeout + 15.0).build())
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self.bot = self.application.bot
        self._wake_dispatch = asyncio.Event()
        self._wake_send = asyncio.Event()
        self._user_tasks: dict[str, asyncio.Task] = {}
        self._chat_tasks: dict[int, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        # Notices are pushed through the outbox as they appear (_push_notifications), not added to replies.
        app.engine.show_notices = False
        if app.generator is not None and hasattr(app.generator, "on_queued"):
            app.generator.on_queued = self._queued

    # ----- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.application.initialize()
        try:
            # The menu is generated from the engine's registry (and prompts/commands.toml); the ingress
            # (or the one process) registers it, workers need not repeat it.
            if self.role != WORKER:
                await self.bot.set_my_commands([BotCommand(c, d) for c, d in self.app.engine.menu()])
        except TelegramError as exc:
            # The menu is a convenience: a Bot API server without it must not stop the bot.
            log.warning("could not register the command menu: %s", type(exc).__name__)
        if self.role != INGRESS:
            self._spawn(self._dispatch_loop())
            self._spawn(self._renew_loop())
        if self.role != WORKER:
            self._spawn(self._send_loop())
        if self.run_scheduler and getattr(self.app, "scheduler", None) is not None:
            self.app.scheduler.start(self.app.config.scheduler.tick_seconds, on_tick=self._wake_send.set)
        self._wake_dispatch.set()  # updates stored before a crash are handled now
        self._wake_send.set()

    async def stop(self) -> None:
        self._stop.set()
        if self.run_scheduler and getattr(self.app, "scheduler", None) is not None:
            self.app.scheduler.stop()
        self._wake_dispatch.set()
        self._wake_send.set()
        tasks = list(self._background) + list(self._user_tasks.values()) + list(self._chat_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.role != INGRESS:
            try:  # what was claimed and not handled is free for another worker at once
                self.claims.release()
            except Exception as exc:
                log.warning("could not release chat claims: %s (they expire)", type(exc).__name__)
        await self.application.shutdown()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def run_polling(self) -> None:
        """Long polling. The offset only moves past updates once they are stored."""
        await self.start()
        try:
            await self.bot.delete_webhook(drop_pending_updates=False)
        except TelegramError as exc:
            log.warning("deleteWebhook failed: %s", type(exc).__name__)
        last = self.transport.last_update_id()
        offset = last + 1 if last is not None else None
        try:
            while not self._stop.is_set():
                try:
                    updates = await self.bot.get_updates(offset=offset, timeout=self.cfg.poll_timeout,
                                                         allowed_updates=ALLOWED_UPDATES)
                except RetryAfter as exc:
                    await asyncio.sleep(retry_after_seconds(exc.retry_after))
                    continue
                except (TimedOut, NetworkError) as exc:
                    log.warning("getUpdates failed: %s; retrying", type(exc).__name__)
                    await asyncio.sleep(1.0)
                    continue
                if updates:
                    try:
                        await self.intake(updates)
                    except Exception as exc:
                        # Not stored (a full disk?): not acknowledged either, so Telegram keeps them for us.
                        log.error("could not store updates: %s; retrying", type(exc).__name__, exc_info=exc)
                        await asyncio.sleep(STORAGE_RETRY_SECONDS)
                        continue
                    offset = max(u.update_id for u in updates) + 1  # acknowledged with the next call
        finally:
            await self.stop()

    async def run_worker(self) -> None:
        """A worker: handle claimed chats until stopped; no intake, no sending (module docstring)."""
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    # ----- intake -------------------------------------------------------------------------

    async def intake(self, updates: list[Update]) -> None:
        """Store members' updates durably; answer strangers once; leave groups. Returns when stored."""
        to_store: list[tuple[int, str, dict]] = []
        for update in updates:
            user, chat = update.effective_user, update.effective_chat
            if user is None or user.is_bot:
                continue
            if chat is not None and chat.type != "private":
                self._spawn(self._leave_group(chat.id))
                continue
            handle = handle_of(user.id)
            if self.people.is_member(handle):
                to_store.append((update.update_id, handle, update.to_dict()))
                continue
            code = _start_code(update)
            if code and self.people.redeem(code, handle, user.first_name or ""):
                # Marked in the stored update, which whichever worker handles it reads.
                to_store.append((update.update_id, handle, {**update.to_dict(), ONBOARDING: True}))
                continue
            # A stranger: one fixed reply, and nothing about them is stored.
            key = "invite_invalid" if code else "stranger"
            if update.callback_query is not None:
                self._spawn(self._safe(self.bot.answer_callback_query(update.callback_query.id)))
            self._spawn(self._direct(user.id, self.say(key)))
        if to_store:
            self.transport.store_updates(to_store)
            self._wake_dispatch.set()

    async def _leave_group(self, chat_id: int) -> None:
        await self._direct(chat_id, self.say("group_left"))
        await self._safe(self.bot.leave_chat(chat_id))

    async def _safe(self, coro) -> Any:
        try:
            return await coro
        except TelegramError as exc:
            log.warning("Bot API call failed: %s", type(exc).__name__)
            return None

    async def _direct(self, chat_id: int, text: str) -> None:
        """An immediate message outside the outbox (stranger replies, queue notices)."""
        for _ in range(5):
            try:
                async with self.flood.slot(chat_id):
                    await self.bot.send_message(chat_id, text, link_preview_options=NO_PREVIEW)
                return
            except RetryAfter as exc:
                self.flood.pause(retry_after_seconds(exc.retry_after))
            except TelegramError as exc:
                log.warning("direct message failed: %s", type(exc).__name__)
                return

    def _queued(self, user: str, ahead: int) -> None:
        """Tell someone they wait behind others: through the outbox, so it arrives in its place."""
        if user.startswith("telegram:"):
            chat_id = int(user.split(":", 1)[1])
            try:
                self.transport.queue(user, chat_id, {"text": self.say("queue_wait", ahead=ahead)})
            except Exception as exc:  # a courtesy: never a reason to fail the turn
                log.warning("could not queue the waiting notice: %s", type(exc).__name__)
            self._wake_send.set()

    # ----- dispatch -----------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        """Claim chats with updates waiting and handle each in its own task; woken by intake or the clock."""
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake_dispatch.wait(), self.cfg.worker_poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake_dispatch.clear()
            busy = sum(not task.done() for task in self._user_tasks.values())
            try:
                claimed = self.claims.claim(self.chats_at_once - busy)
            except Exception as exc:  # a full disk, a database restarting: look again shortly
                log.error("could not claim chats: %s", type(exc).__name__)
                await asyncio.sleep(STORAGE_RETRY_SECONDS)
                continue
            for handle in claimed:
                _ensure_worker(self._user_tasks, handle, self._drain_user)

    async def _drain_user(self, handle: str) -> None:
        """Handle the stored updates of one claimed chat strictly in order, then give the chat back."""
        try:
            pending = self.transport.pending_updates(handle)
            for item in pending:
                if self._stop.is_set() or not self.claims.holds(handle):
                    return  # stopping, or the claim lapsed and another worker has the chat now
                update = Update.de_json(item.payload, self.bot)
                await self.application.process_update(update)
            if pending and self.transport.pending_updates(handle, limit=1)[:1] == pending[:1]:
                # Not even the first one could be finished (a full disk?): wait before trying again.
                await asyncio.sleep(STORAGE_RETRY_SECONDS)
        except Exception as exc:  # the inbox could not be read: not again at once (nor in a loop)
            log.error("could not read stored updates: %s", type(exc).__name__)
            await asyncio.sleep(STORAGE_RETRY_SECONDS)
        finally:
            # Released after each batch, so a busy chat cannot keep others waiting for a worker; what
            # arrived meanwhile is claimed again at once (by this worker or another), oldest first.
            if not self._stop.is_set():
                try:
                    self.claims.release(handle)
                except Exception as exc:  # a full disk: the claim lapses with its lease instead
                    log.warning("could not release a chat claim: %s", type(exc).__name__)
                self._wake_dispatch.set()

    async def _renew_loop(self) -> None:
        """Keep this worker's claims alive while it works (a third of the lease, so two renewals may fail)."""
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.cfg.claim_lease_seconds / 3)
            except asyncio.TimeoutError:
                pass
            try:
                self.claims.renew()
            except Exception as exc:
                log.warning("could not renew chat claims: %s", type(exc).__name__)

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Map one stored update to an engine event, handle it, queue the replies."""
        user, chat = update.effective_user, update.effective_chat
        chat_id = chat.id if chat is not None else user.id
        if update.callback_query is not None:
            await self._safe(update.callback_query.answer())
        event = self._event(update)
        await self._safe(self.bot.send_chat_action(chat_id, "typing"))  # visible at once
        streamer = Streamer(self, handle_of(user.id), chat_id, update.update_id) if self.cfg.stream != "off" \
            else None
        token = current_partial_sink.set(streamer.partial if streamer else None)
        try:
            replies = await self.app.engine.handle(event) if event else [Reply(self.say("unsupported_media"))]
        finally:
            current_partial_sink.reset(token)
        if streamer is not None:
            await streamer.finish()
        rows = [payload for reply in replies for payload in to_payloads(reply)]
        # The replies settle any partial message of this update (storage.transport), in this transaction.
        if not self.transport.finish_update(update.update_id, [(chat_id, row) for row in rows]):
            # The person was just forgotten (their inbox and outbox went with them): say goodbye directly.
            for row in rows:
                if "text" in row and "edit" not in row:
                    await self._direct(chat_id, row["text"])
        self._wake_send.set()

    def _event(self, update: Update) -> Event | None:
        user = update.effective_user
        common = {"user": handle_of(user.id), "display_name": user.first_name or "", "id": update.update_id}
        if update.callback_query is not None:
            return Event(choice=update.callback_query.data or "", **common)
        if update.edited_message is not None:
            return Event(kind="edited", **common)
        msg = update.message
        if msg is None:
            return None
        if update.api_kwargs.get(ONBOARDING):
            return Event(text="/start", onboarding=True, **common)
        # A member's "/start CODE" (an invite for another role) goes to the engine as typed: it redeems it.
        if msg.forward_origin is not None:
            return Event(kind="forwarded", text=msg.text or msg.caption or "", **common)
        if msg.text is not None:
            return Event(text=msg.text, **common)
        caption = msg.caption or ""
        if msg.sticker is not None:
            return Event(kind="sticker", **common)
        if msg.photo:
            return Event(kind="photo", text=caption, **common)
        clip = audio_clip(self.bot, msg)
        if clip is not None:  # fetched by its file id only when handled: the sound is never stored
            return Event(kind="voice", text=caption, audio=clip, **common)
        if msg.document is not None:
            return Event(kind="document", text=caption, **common)
        return Event(kind="other", text=caption, **common)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the error type, where it happened and the update id: never message text (promise 13)."""
        update_id = getattr(update, "update_id", None)
        log.error("error %s while handling update %s", type(context.error).__name__, update_id,
                  exc_info=context.error)
        if isinstance(update, Update) and update.effective_user is not None:
            # What they wrote is in the inbox; tell them, and don't try this update forever.
            self.transport.finish_update(update.update_id, [(update.effective_user.id, {"text": self.say("error")})])
            self._wake_send.set()

    # ----- send ---------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        # Replies written by workers in other processes are found by looking; in one process, a wake-up.
        every = 1.0 if self.role == EVERYTHING else self.cfg.worker_poll_seconds
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake_send.wait(), every)
            except asyncio.TimeoutError:
                pass
            self._wake_send.clear()
            self._push_notifications()
            for chat_id in self.transport.pending_chats():
                _ensure_worker(self._chat_tasks, chat_id, self._drain_chat)

    def _push_notifications(self) -> None:
        """Notices (a check-in, a comment, a note) go out without waiting for the user to write."""
        notices = getattr(self.app, "notices", None)
        if notices is None:
            return
        for handle in notices.pending_handles():
            if handle.startswith("telegram:"):
                # Moved into the outbox in one transaction: none lost, none sent twice.
                self.transport.queue_notices(handle, int(handle.split(":", 1)[1]))

    async def _drain_chat(self, chat_id: int) -> None:
        while not self._stop.is_set():
            rows = self.transport.pending_outbox(chat_id)
            if not rows:
                return
            for row in rows:
                if not await self._deliver(row):
                    return  # leave it pending; the next round tries again

    async def _deliver(self, row) -> bool:
        p = self._resolve(row)
        for _attempt in range(8):
            try:
                async with self.flood.slot(row.chat_id):
                    message_id = await self._send(row.chat_id, p) if p is not None else None
                self.transport.mark_sent(row.id, message_id)
                return True
            except RetryAfter as exc:
                wait = retry_after_seconds(exc.retry_after)
                log.info("flood control: waiting %.1f s", wait)
                self.flood.pause(wait)
            except BadRequest as exc:
                if "edit" in p and "not modified" not in str(exc).lower():
                    p = {k: v for k, v in p.items() if k != "edit"}  # the message is gone: send it new
                    continue
                if not {"delete", "edit", "partial"} & set(p):
                    log.error("message could not be delivered: %s", type(exc).__name__)
                self.transport.mark_sent(row.id)
                return True
            except Forbidden:
                log.warning("chat unreachable (bot blocked); message kept as undeliverable")
                self.transport.mark_sent(row.id)
                return True
            except (TimedOut, NetworkError) as exc:
                attempts = self.transport.count_attempt(row.id)
                log.warning("send failed (%s), attempt %d; will retry", type(exc).__name__, attempts)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(attempts, 6)))
        return False

    def _resolve(self, row) -> dict | None:
        """What to do for a row of a stream: show partial text, or settle the message shown so far."""
        p = row.payload
        if row.stream_of is None:
            return p
        shown = self.transport.stream_message_id(row.stream_of)
        if p.get("partial") == "draft":
            return p
        if p.get("partial"):
            text = p["text"][:4090] + " …"
            return {"text": text, "partial": "message"} if shown is None else \
                {"text": text, "partial": "message", "edit": shown}
        if shown is None:  # nothing was shown: the reply goes out as a plain message (or not at all)
            return {k: v for k, v in p.items() if k != "settle"} if p.get("text") else None
        if p.get("settle") == "edit":
            return {**{k: v for k, v in p.items() if k != "settle"}, "edit": shown}
        return {"delete": shown}

    async def _send(self, chat_id: int, p: dict) -> int | None:
        """One Bot API call; returns Telegram's id of a new partial (streamed) message."""
        if p.get("partial") == "draft":
            await self.bot.send_message_draft(chat_id, draft_id=1, text=p["text"][:4096])
        elif "delete" in p:
            await self.bot.delete_message(chat_id, p["delete"])
        elif "document" in p:
            doc = p["document"]
            await self.bot.send_document(chat_id, InputFile(base64.b64decode(doc["data"]), filename=doc["name"]),
                                         caption=p["text"][:1024] or None)
        elif "photo" in p:  # a chart: shown in the chat, its text alternative as the caption
            pic = p["photo"]
            await self.bot.send_photo(chat_id, InputFile(base64.b64decode(pic["data"]), filename=pic["name"]),
                                      caption=p["text"][:1024] or None)
        elif "edit" in p:
            await self.bot.edit_message_text(p["text"], chat_id=chat_id, message_id=p["edit"],
                                             reply_markup=keyboard(p.get("choices", [])),
                                             link_preview_options=NO_PREVIEW)
        else:
            msg = await self.bot.send_message(chat_id, p["text"], reply_markup=keyboard(p.get("choices", [])),
                                              link_preview_options=NO_PREVIEW)
            return msg.message_id if p.get("partial") else None
        return None


class Streamer:
    """Shows model text as it is written: at most one partial text a second, queued in the outbox."""

    def __init__(self, bot: SpannerTelegram, handle: str, chat_id: int, update_id: int):
        self.tg = bot
        self.handle = handle
        self.chat_id = chat_id
        self.update_id = update_id
        self.draft = bot.cfg.stream == "draft"
        self.latest = ""
        self.shown = ""
        self.last = 0.0
        self.task: asyncio.Task | None = None
        self.closed = False

    def partial(self, text: str) -> None:
        if self.closed:
            return
        self.latest = strip_urls(text)
        if self.task is None or self.task.done():
            self.task = self.tg._spawn(self._update())

    async def _update(self) -> None:
        wait = 1.0 - (time.monotonic() - self.last)
        if wait > 0:
            await asyncio.sleep(wait)
        text = self.latest.strip()
        if self.closed or is_blank(text) or text == self.shown:
            return
        self.last = time.monotonic()
        try:
            self.tg.transport.stream(self.handle, self.chat_id, self.update_id, text[:4000], draft=self.draft)
        except Exception as exc:
            # Progressive display is a nicety; the final reply goes through the outbox regardless.
            log.info("progressive display skipped: %s", type(exc).__name__)
            return
        self.shown = text
        self.tg._wake_send.set()

    async def finish(self) -> None:
        """No more partial text: the update's replies settle what was shown (storage.transport)."""
        self.closed = True
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


def _ensure_worker(tasks: dict, key, work) -> None:
    """One worker task per key (a user, a chat): their items stay in order, others run alongside."""
    task = tasks.get(key)
    if task is None or task.done():
        tasks[key] = asyncio.create_task(work(key))


def to_payloads(reply: Reply) -> list[dict]:
    """One outbox row per Telegram message: split at 4,096, buttons on the last part."""
    text = strip_urls(reply.text) if reply.generated else reply.text
    if reply.attachment is not None:
        att = reply.attachment
        kind = "photo" if att.mime == "image/png" else "document"  # a chart is shown, a file is kept
        return [{"text": text[:1024], kind: {"name": att.name, "mime": att.mime,
                                             "data": base64.b64encode(att.data).decode()}}]
    parts = split_text(text)
    rows = [{"text": part} for part in parts]
    rows[-1]["choices"] = [[c.label, c.data] for c in reply.choices]
    return rows


def _start_code(update: Update) -> str | None:
    msg = update.message
    if msg is None or not msg.text or not msg.text.startswith("/start"):
        return None
    parts = msg.text.split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else None
