"""Flood control for the Bot API: about one message a second per chat (with a short burst), 30 overall.

Both limits count from when Telegram *answered*, never from when we meant to
send: Telegram counts arrivals, which come before its answers, so measuring
from the answers can never look faster to Telegram than the rate we mean,
however late a busy event loop gets to a send.
  per chat: at most `burst` messages in any window of burst/rate seconds;
  overall: a send holds one of `overall` tokens from its start until one second
  after Telegram answered, so no one-second window ever sees more than `overall`.
A 429 pauses everything for retry_after (a number of seconds or a timedelta, as
python-telegram-bot may give either).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from contextlib import asynccontextmanager
from datetime import timedelta


class FloodControl:
    def __init__(self, per_chat: float = 1.0, burst: int = 3, overall: float = 30.0):
        self.window = burst / per_chat
        self.burst = burst
        self.overall_tokens = max(1, int(overall))
        self._overall: asyncio.Semaphore | None = None  # made on first use, on the running loop
        self.done: dict[int, deque[float]] = defaultdict(lambda: deque(maxlen=burst))
        self.locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.paused_until = 0.0

    @asynccontextmanager
    async def slot(self, chat_id: int):
        """Hold this around one Bot API call that posts to `chat_id`."""
        if self._overall is None:
            self._overall = asyncio.Semaphore(self.overall_tokens)
        async with self.locks[chat_id]:
            recent = self.done[chat_id]
            wait = 0.0
            if len(recent) == self.burst:
                wait = recent[0] + self.window - time.monotonic()
            wait = max(wait, self.paused_until - time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            await self._overall.acquire()
            try:
                yield
            finally:
                recent.append(time.monotonic())
                asyncio.get_running_loop().call_later(1.0, self._overall.release)

    def pause(self, seconds: float) -> None:
        """After a 429 everything waits: Telegram's limit applies to the whole bot."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


def retry_after_seconds(value: int | float | timedelta) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)
