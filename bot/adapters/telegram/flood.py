"""Flood control for the Bot API: about one message a second per chat (with a short burst), 30 overall.

Per chat we count *completed* sends: a chat may have at most `burst` messages
in any window of burst/rate seconds, measured from when Telegram answered.
Telegram counts arrivals, which come before its answers, so measuring from
the answers can never look faster to Telegram than the rate we mean, however
late the event loop gets to a send. Overall we use a token bucket (its burst is
far below Telegram's). A 429 pauses everything for retry_after (a number of
seconds or a timedelta, as python-telegram-bot may give either).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from contextlib import asynccontextmanager
from datetime import timedelta


class Bucket:
    def __init__(self, rate: float, burst: float):
        self.rate, self.capacity = rate, burst
        self.tokens, self.updated = burst, time.monotonic()

    def delay(self) -> float:
        """Take a token, returning how long to wait first (0 when one is free)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class FloodControl:
    def __init__(self, per_chat: float = 1.0, burst: int = 3, overall: float = 30.0):
        self.window = burst / per_chat
        self.burst = burst
        self.overall = Bucket(overall, max(1.0, overall / 10))
        self.done: dict[int, deque[float]] = defaultdict(lambda: deque(maxlen=burst))
        self.locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.paused_until = 0.0

    @asynccontextmanager
    async def slot(self, chat_id: int):
        """Hold this around one Bot API call that posts to `chat_id`."""
        async with self.locks[chat_id]:
            recent = self.done[chat_id]
            wait = 0.0
            if len(recent) == self.burst:
                wait = recent[0] + self.window - time.monotonic()
            wait = max(wait, self.overall.delay(), self.paused_until - time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                recent.append(time.monotonic())

    def pause(self, seconds: float) -> None:
        """After a 429 everything waits: Telegram's limit applies to the whole bot."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


def retry_after_seconds(value: int | float | timedelta) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)
