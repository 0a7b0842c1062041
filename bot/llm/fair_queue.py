"""A fair queue for the one model: round-robin across users, each user's requests in order.

One busy user must not starve everyone else: the worker takes one request
from the user at the front, then moves that user to the back. Thread-safe,
because the worker is a thread and callers live on the event loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._by_user: OrderedDict[str, deque[T]] = OrderedDict()
        self._closed = False

    def put(self, user: str, item: T) -> None:
        with self._cond:
            self._by_user.setdefault(user, deque()).append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> tuple[str, T] | None:
        """The next (user, item) in round-robin order; None when closed or timed out."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._by_user or self._closed, timeout):
                return None
            if not self._by_user:
                return None
            user, items = self._by_user.popitem(last=False)
            item = items.popleft()
            if items:
                self._by_user[user] = items  # back of the line
            return user, item

    def position(self, user: str) -> int:
        """How many other users' requests come before this user's next one (0: next)."""
        with self._cond:
            ahead = 0
            for other in self._by_user:
                if other == user:
                    return ahead
                ahead += 1
            return ahead

    def __len__(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._by_user.values())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
