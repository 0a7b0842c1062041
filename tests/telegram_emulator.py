"""A Telegram Bot API emulator on loopback, for tests and the benchmark.

It speaks the Bot API over HTTP exactly as documented, strictly enough for
python-telegram-bot to parse (dates in seconds, is_bot on users), and
implements the methods Spanner uses. A client side lets a test act as users
(send text, press buttons, send stickers...) and read what the bot sent. It can
answer 429 with retry_after on demand, hold a method open to freeze the bot in
place, and counts every call so tests can check flood limits. Users can send
voice messages and audio files: getFile and the file download are served from
memory, with getFile's 20 MB limit, and downloads can be held like methods.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web

BOT_ID = 7_000_001
BOT_USERNAME = "spanner_test_bot"
GETFILE_LIMIT = 20 * 1024 * 1024  # the cloud Bot API's getFile limit


@dataclass
class Sent:
    """One message as the user would see it in the chat, with its edit history."""

    chat_id: int
    message_id: int
    text: str
    reply_markup: dict | None
    at: float
    edits: list[str] = field(default_factory=list)
    link_preview_disabled: bool = False
    parse_mode: str | None = None
    deleted: bool = False

    @property
    def buttons(self) -> list[tuple[str, str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for row in rows for b in row]


class TelegramEmulator:
    """Run with start() (its own thread and event loop); stop() at the end."""

    def __init__(self, token: str = "123456:TEST-token"):
        self.token = token
        self.port = 0
        self.updates: list[dict] = []
        self.confirmed_offset = 0
        self.messages: dict[int, list[Sent]] = defaultdict(list)
        self.calls: list[tuple[str, float, dict]] = []
        self.commands: list[dict] = []
        self.files: dict[str, bytes] = {}  # file_id -> the bytes a user sent
        self.downloads: list[str] = []  # file ids, each time the bot downloaded one
        self.left_chats: list[int] = []
        self.chat_actions: list[tuple[int, float]] = []
        self.drafts: list[tuple[int, str]] = []
        self.webhook: dict | None = None
        self.fail_next: dict[str, list[tuple[int, int]]] = defaultdict(list)  # method -> [(status, retry_after)]
        self.hold: dict[str, asyncio.Event] = {}
        self.reject_methods: set[str] = set()
        # Telegram-like limits, off unless a benchmark asks: (per chat per second, burst, overall per second).
        self.limits: tuple[float, int, float] | None = None
        self.too_many = 0
        self._buckets: dict[int, list[float]] = {}
        self._overall: list[float] = [0.0, 0.0]
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._new_update: asyncio.Condition | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # ----- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> "TelegramEmulator":
        self._thread = threading.Thread(target=self._serve, daemon=True, name="telegram-emulator")
        self._thread.start()
        self._ready.wait(10)
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._new_update = asyncio.Condition()
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._dispatch)
        app.router.add_get("/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.*}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop is None:
            return
        for ev in self.hold.values():
            self._loop.call_soon_threadsafe(ev.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ----- the client side: act as users ------------------------------------------------

    @staticmethod
    def _user(user_id: int, name: str) -> dict:
        return {"id": user_id, "is_bot": False, "first_name": name, "language_code": "en"}

    def _push(self, update: dict) -> int:
        async def push():
            async with self._new_update:
                self.updates.append(update)
                self._new_update.notify_all()
        self._call(push())
        return update["update_id"]

    def _message(self, user_id: int, name: str, chat_type: str = "private", **fields) -> dict:
        chat = {"id": user_id, "type": "private", "first_name": name} if chat_type == "private" else \
            {"id": -abs(user_id) - 10_000, "type": chat_type, "title": "Team chat"}
        return {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                "from": self._user(user_id, name), **fields}

    def send_text(self, user_id: int, text: str, name: str = "Alex", chat_type: str = "private",
                  update_id: int | None = None) -> int:
        msg = self._message(user_id, name, chat_type, text=text)
        if text.startswith("/"):
            command = text.split()[0]
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._push({"update_id": update_id or next(self._update_ids), "message": msg})

    def redeliver(self, update_id: int) -> int:
        """Telegram sends an update again (as after a lost acknowledgement)."""
        original = next(u for u in self.updates if u["update_id"] == update_id)
        if self.confirmed_offset > update_id:
            self.confirmed_offset = update_id
        return self._push(json.loads(json.dumps(original)))

    def send_other(self, user_id: int, kind: str, name: str = "Alex", caption: str | None = None) -> int:
        extra: dict = {}
        if kind == "sticker":
            extra["sticker"] = {"file_id": "stk1", "file_unique_id": "u1", "width": 512, "height": 512,
                                "is_animated": False, "is_video": False, "type": "regular"}
        elif kind == "photo":
            extra["photo"] = [{"file_id": "ph1", "file_unique_id": "u2", "width": 90, "height": 90}]
        elif kind == "voice":
            extra["voice"] = {"file_id": "vc1", "file_unique_id": "u3", "duration": 3}
        elif kind == "document":
            extra["document"] = {"file_id": "dc1", "file_unique_id": "u4", "file_name": "notes.pdf"}
        elif kind == "forwarded":
            extra["text"] = caption or ""
            extra["forward_origin"] = {"type": "hidden_user", "sender_user_name": "Someone",
                                       "date": int(time.time()) - 60}
            caption = None
        if caption:
            extra["caption"] = caption
        return self._push({"update_id": next(self._update_ids), "message": self._message(user_id, name, **extra)})

    def send_audio(self, user_id: int, data: bytes, kind: str = "voice", seconds: int = 5, name: str = "Alex",
                   caption: str | None = None, claimed_size: int | None = None, mime: str = "audio/ogg",
                   file_name: str = "note.ogg") -> int:
        """A voice message ("voice"), an audio file ("audio") or a file that is audio ("document")."""
        file_id = f"AwACAgQ{next(self._file_ids)}"
        self.files[file_id] = data
        media = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": claimed_size or len(data),
                 "mime_type": mime}
        if kind in ("voice", "audio"):
            media["duration"] = seconds
        if kind in ("audio", "document"):
            media["file_name"] = file_name
        extra = {kind: media, **({"caption": caption} if caption else {})}
        return self._push({"update_id": next(self._update_ids), "message": self._message(user_id, name, **extra)})

    def edit_text(self, user_id: int, message_id: int, text: str, name: str = "Alex") -> int:
        msg = self._message(user_id, name, text=text)
        msg["message_id"] = message_id
        msg["edit_date"] = int(time.time())
        return self._push({"update_id": next(self._update_ids), "edited_message": msg})

    def press(self, user_id: int, data: str, message_id: int | None = None, name: str = "Alex") -> int:
        message = None
        if message_id is not None:
            message = {"message_id": message_id, "date": int(time.time()),
                       "chat": {"id": user_id, "type": "private", "first_name": name},
                       "from": {"id": BOT_ID, "is_bot": True, "first_name": "Spanner", "username": BOT_USERNAME},
                       "text": "(earlier message)"}
        query = {"id": str(next(self._update_ids)), "from": self._user(user_id, name),
                 "chat_instance": f"ci{user_id}", "data": data}
        if message:
            query["message"] = message
        return self._push({"update_id": next(self._update_ids), "callback_query": query})

    def fail(self, method: str, status: int = 429, retry_after: int = 1, times: int = 1) -> None:
        with self._lock:
            self.fail_next[method] += [(status, retry_after)] * times

    def hold_method(self, method: str) -> None:
        """Requests to `method` hang until release_method(): freezes the bot mid-handling."""
        async def make():
            self.hold[method] = asyncio.Event()
        self._call(make())

    def release_method(self, method: str) -> None:
        ev = self.hold.pop(method, None)
        if ev is not None:
            self._loop.call_soon_threadsafe(ev.set)

    # ----- reading what the bot did -------------------------------------------------------

    def chat(self, chat_id: int) -> list[Sent]:
        with self._lock:
            return [m for m in self.messages[chat_id] if not m.deleted]

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.chat(chat_id)]

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"emulator: timed out waiting for {what}")

    def wait_text(self, chat_id: int, needle: str, timeout: float = 30) -> Sent:
        def found():
            return next((m for m in self.chat(chat_id) if needle in m.text), None)
        return self.wait_for(found, timeout, f"{needle!r} in chat {chat_id}: {self.texts(chat_id)[-3:]}")

    def wait_count(self, chat_id: int, count: int, timeout: float = 30) -> list[Sent]:
        return self.wait_for(lambda: len(self.chat(chat_id)) >= count and self.chat(chat_id), timeout,
                             f"{count} messages in chat {chat_id}")

    def method_calls(self, method: str) -> list[tuple[float, dict]]:
        with self._lock:
            return [(t, p) for m, t, p in self.calls if m == method]

    # ----- the Bot API side ---------------------------------------------------------------

    @staticmethod
    def _ok(result) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
        body = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    async def _params(self, request: web.Request) -> dict:
        if request.content_type == "application/json":
            return await request.json()
        data = await request.post()
        params = {}
        for key, value in data.items():
            if isinstance(value, web.FileField):
                params[key] = {"filename": value.filename, "content": value.file.read()}
                continue
            try:
                params[key] = json.loads(value)
            except (TypeError, ValueError):
                params[key] = value
        return params

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        with self._lock:
            self.calls.append((method, time.monotonic(), params))
            failure = self.fail_next[method].pop(0) if self.fail_next[method] else None
        if method in self.hold:
            await self.hold[method].wait()
        if failure:
            status, retry_after = failure
            if status == 429:
                return self._error(429, f"Too Many Requests: retry after {retry_after}", retry_after)
            return self._error(status, "Internal Server Error")
        if method in self.reject_methods:
            return self._error(404, "Not Found: method not found")
        if self.limits and method in ("sendMessage", "editMessageText", "sendDocument", "sendPhoto") and self._over_limit(
                int(params.get("chat_id", 0))):
            with self._lock:
                self.too_many += 1
            return self._error(429, "Too Many Requests: retry after 1", 1)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        return await handler(params)

    def _over_limit(self, chat_id: int) -> bool:
        """Token buckets like Telegram's: about 1 message a second per chat with a small burst, 30 overall."""
        per_chat, burst, overall = self.limits
        now = time.monotonic()
        tokens, updated = self._buckets.get(chat_id, [float(burst), now])
        tokens = min(burst, tokens + (now - updated) * per_chat)
        g_tokens, g_updated = self._overall if self._overall[1] else [overall, now]
        g_tokens = min(overall, g_tokens + (now - g_updated) * overall)
        if tokens < 1 or g_tokens < 1:
            self._buckets[chat_id] = [tokens, now]
            self._overall = [g_tokens, now]
            return True
        self._buckets[chat_id] = [tokens - 1, now]
        self._overall = [g_tokens - 1, now]
        return False

    async def _m_getFile(self, p):
        file_id = str(p.get("file_id", ""))
        data = self.files.get(file_id)
        if data is None:
            return self._error(400, "Bad Request: invalid file_id")
        if len(data) > GETFILE_LIMIT:
            return self._error(400, "Bad Request: file is too big")
        return self._ok({"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data),
                         "file_path": f"voice/{file_id}.oga"})

    async def _download(self, request: web.Request) -> web.Response:
        """GET /file/bot<token>/<file_path>, as the Bot API serves files."""
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        file_id = request.match_info["path"].rsplit("/", 1)[-1].split(".")[0]
        with self._lock:
            self.calls.append(("download", time.monotonic(), {"file_id": file_id}))
        if "download" in self.hold:
            await self.hold["download"].wait()
        data = self.files.get(file_id)
        if data is None:
            return web.Response(status=404, text="Not Found")
        with self._lock:
            self.downloads.append(file_id)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _m_getMe(self, p):
        return self._ok({"id": BOT_ID, "is_bot": True, "first_name": "Spanner", "username": BOT_USERNAME,
                         "can_join_groups": False, "can_read_all_group_messages": False,
                         "supports_inline_queries": False})

    async def _m_getUpdates(self, p):
        offset = int(p.get("offset") or 0)
        timeout = float(p.get("timeout") or 0)
        limit = int(p.get("limit") or 100)
        if offset:
            self.confirmed_offset = max(self.confirmed_offset, offset)

        def ready():
            return [u for u in self.updates if u["update_id"] >= max(offset, self.confirmed_offset)]

        async with self._new_update:
            if not ready() and timeout > 0:
                try:
                    await asyncio.wait_for(self._new_update.wait_for(lambda: bool(ready())), timeout)
                except asyncio.TimeoutError:
                    pass
            batch = sorted(ready(), key=lambda u: u["update_id"])[:limit]
        # Each update is delivered with its id; duplicates (redelivery) keep theirs.
        seen, out = set(), []
        for u in batch:
            key = json.dumps(u, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(u)
        return self._ok(out)

    def _bot_message(self, chat_id: int, text: str, p: dict) -> tuple[dict, Sent]:
        message_id = next(self._message_ids)
        sent = Sent(chat_id=chat_id, message_id=message_id, text=text, reply_markup=p.get("reply_markup"),
                    at=time.monotonic(), parse_mode=p.get("parse_mode"),
                    link_preview_disabled=bool((p.get("link_preview_options") or {}).get("is_disabled")
                                               or p.get("disable_web_page_preview")))
        result = {"message_id": message_id, "date": int(time.time()),
                  "chat": {"id": chat_id, "type": "private", "first_name": "User"},
                  "from": {"id": BOT_ID, "is_bot": True, "first_name": "Spanner", "username": BOT_USERNAME},
                  "text": text}
        if p.get("reply_markup"):
            result["reply_markup"] = p["reply_markup"]
        return result, sent

    async def _m_sendMessage(self, p):
        text = str(p.get("text", ""))
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self._error(400, "Bad Request: message is too long")
        chat_id = int(p["chat_id"])
        result, sent = self._bot_message(chat_id, text, p)
        with self._lock:
            self.messages[chat_id].append(sent)
        return self._ok(result)

    async def _m_editMessageText(self, p):
        chat_id, message_id, text = int(p["chat_id"]), int(p["message_id"]), str(p["text"])
        if len(text) > 4096:
            return self._error(400, "Bad Request: message is too long")
        with self._lock:
            target = next((m for m in self.messages[chat_id] if m.message_id == message_id and not m.deleted), None)
            if target is None:
                return self._error(400, "Bad Request: message to edit not found")
            if target.text == text and target.reply_markup == p.get("reply_markup"):
                return self._error(400, "Bad Request: message is not modified")
            target.edits.append(target.text)
            target.text = text
            target.reply_markup = p.get("reply_markup")
        result, _ = self._bot_message(chat_id, text, p)
        result["message_id"] = message_id
        return self._ok(result)

    async def _m_deleteMessage(self, p):
        chat_id, message_id = int(p["chat_id"]), int(p["message_id"])
        with self._lock:
            for m in self.messages[chat_id]:
                if m.message_id == message_id:
                    m.deleted = True
        return self._ok(True)

    async def _m_answerCallbackQuery(self, p):
        return self._ok(True)

    async def _m_sendChatAction(self, p):
        with self._lock:
            self.chat_actions.append((int(p["chat_id"]), time.monotonic()))
        return self._ok(True)

    async def _m_sendMessageDraft(self, p):
        with self._lock:
            self.drafts.append((int(p["chat_id"]), str(p.get("text", ""))))
        return self._ok(True)

    async def _m_setMyCommands(self, p):
        self.commands = p.get("commands", [])
        return self._ok(True)

    async def _m_deleteWebhook(self, p):
        self.webhook = None
        return self._ok(True)

    async def _m_setWebhook(self, p):
        self.webhook = p
        return self._ok(True)

    async def _m_leaveChat(self, p):
        self.left_chats.append(int(p["chat_id"]))
        return self._ok(True)

    def _sent_file(self, p: dict, kind: str) -> tuple[dict, str]:
        """A photo or document the bot sent: shown in the chat as "[kind name]"; the file stays in the call."""
        chat_id = int(p["chat_id"])
        upload = p.get(kind) or {}
        name = upload.get("filename", kind) if isinstance(upload, dict) else kind
        result, sent = self._bot_message(chat_id, f"[{kind} {name}]", p)
        with self._lock:
            self.messages[chat_id].append(sent)
        result.pop("text")
        if p.get("caption"):
            result["caption"] = p["caption"]
        return result, name

    async def _m_sendPhoto(self, p):
        result, _ = self._sent_file(p, "photo")
        result["photo"] = [{"file_id": "photo1", "file_unique_id": "p1", "width": 1152, "height": 672}]
        return self._ok(result)

    async def _m_sendDocument(self, p):
        result, name = self._sent_file(p, "document")
        result["document"] = {"file_id": "out1", "file_unique_id": "o1", "file_name": name}
        return self._ok(result)
