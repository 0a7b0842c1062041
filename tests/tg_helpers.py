"""Running the real Telegram bot (python-telegram-bot Application) against the emulator, from sync tests."""

from __future__ import annotations

import asyncio
import threading

from bot.adapters.telegram.serve import make_bot


class LiveBot:
    """The bot's polling loop on its own thread and event loop; stop() shuts it down cleanly."""

    def __init__(self, app, emulator):
        self.app = app
        self.emulator = emulator
        self.loop = asyncio.new_event_loop()
        self.bot = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="live-bot")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.bot = make_bot(self.app, self.emulator.token)
        self._task = self.loop.create_task(self.bot.run_polling())
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_until_complete(self._task)
        except BaseException:
            pass

    def start(self) -> "LiveBot":
        self._thread.start()
        self._ready.wait(10)
        return self

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.bot is not None:
            self.loop.call_soon_threadsafe(self.bot.request_stop)
        self._thread.join(30)


def share_whole_entry(emulator, user_id: int, number: int) -> None:
    """The author shares entry `number` with their one supervisor, whole, names kept, by the buttons."""
    emulator.send_text(user_id, f"/share {number}")
    emulator.press(user_id, "share:scope:full", emulator.wait_text(user_id, "How much").message_id)
    emulator.press(user_id, "share:labels:no", emulator.wait_text(user_id, "could identify someone").message_id)
    emulator.press(user_id, "share:confirm:yes", emulator.wait_text(user_id, "exactly what they will see").message_id)
    emulator.wait_text(user_id, f"Entry #{number} is shared")
