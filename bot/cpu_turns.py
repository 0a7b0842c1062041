"""One heavy job at a time on the host's cores: the language model and the transcriber take turns.

On a 2-core host a generation and a transcription running together would each
take twice as long and starve the event loop that answers everyone else. Both
workers hold a turn for each job; turns are granted first come, first served,
and anyone can ask how many jobs are ahead, so a person waiting can be told so.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class CpuTurns:
    """A first-come, first-served lock shared by the heavy workers (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._cond.wait_for(lambda: self._serving == ticket)
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()

    def busy(self) -> int:
        """How many jobs hold or wait for a turn right now."""
        with self._cond:
            return self._next_ticket - self._serving
