"""Flood control for the Bot API: about one message a second per chat (with a short burst), 30 overall.

Token buckets, awaited before every send. A 429 from Telegram is handled by
the sender: it waits retry_after (a number of seconds or a timedelta, as
python-telegram-bot may give either) and tries again.
"""

from __future__ import annotations

import asyncio
import time
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
        self.per_chat, self.burst = per_chat, burst
        self.overall = Bucket(overall, max(1.0, overall / 10))
        self.chats: dict[int, Bucket] = {}
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    async def wait(self, chat_id: int | None) -> None:
        async with self._lock:  # reserve in order, sleep outside the lock
            delay = self.overall.delay()
            if chat_id is not None:
                bucket = self.chats.setdefault(chat_id, Bucket(self.per_chat, self.burst))
                delay = max(delay, bucket.delay())
            delay = max(delay, self.paused_until - time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """After a 429 everything waits: Telegram's limit applies to the whole bot."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


def retry_after_seconds(value: int | float | timedelta) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)
