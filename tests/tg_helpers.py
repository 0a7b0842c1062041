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


class Fleet:
    """Spanner's Telegram side as separate processes on one data directory: an ingress and workers.

    Each is a real `spanner telegram` process (--ingress-only or --worker), so a test can kill one
    with SIGKILL. The config holds no model or literature: the messages used are answered without them.
    """

    def __init__(self, tmp_path, data_dir, emulator, extra: str = "", url: str = "", **telegram):
        import os
        self.data_dir = data_dir
        self.token = emulator.token
        settings = {"base_url": emulator.base_url, "poll_timeout": 1, "per_chat_per_second": 30.0,
                    "per_chat_burst": 10, "global_per_second": 1000.0, "worker_poll_seconds": 0.1, **telegram}
        lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items())
        self.config = tmp_path / "fleet.toml"
        self.config.write_text(f'[paths]\ndata_dir = "{data_dir}"\n[storage]\nurl = "{url}"\n[llm]\nenabled = false\n'
                               f'[retrieval]\nenabled = false\n[voice]\nenabled = false\n'
                               f'[scheduler]\nquiet_hours = ""\ntick_seconds = 5\n[telegram]\n{lines}{extra}')
        self.env = {**os.environ, "SPANNER_TELEGRAM_TOKEN": emulator.token}
        self.procs = []

    def start(self, *flags: str):
        import subprocess
        import sys
        from pathlib import Path
        spanner = str(Path(sys.executable).parent / "spanner")  # this environment's, as conftest.SPANNER
        proc = subprocess.Popen([spanner, "telegram", "--config", str(self.config), *flags], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def stop(self) -> list[str]:
        """SIGTERM every process still running; their error output (to check nothing leaked)."""
        import signal
        errors = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                errors.append(proc.communicate(timeout=30)[1].decode(errors="replace"))
            except Exception:
                proc.kill()
                errors.append(proc.communicate()[1].decode(errors="replace"))
        return errors
