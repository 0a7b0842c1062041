"""One event, one commit: journal writes are buffered while an event is handled, then applied at once.

Handling an event may wait seconds for the model, so we cannot hold a database
transaction open. Instead, reads go straight to the journal and writes are
collected here; at the end the engine applies them together with the new
conversation state (which records the event id and its replies) in one
transaction. A crash before that commit leaves no trace, so the event is
simply handled again; a crash after it is recognised by the event id, and the
stored replies are sent instead of acting twice.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Sequence

from .ports import Journal
from .records import Entry

#: The unit of work of the event being handled in this task, if any.
current_unit: ContextVar["UnitOfWork | None"] = ContextVar("current_unit", default=None)


@dataclass
class UnitOfWork:
    """Buffers one user's writes; behaves like the Journal for the engine meanwhile."""

    journal: Journal
    user: str
    ops: list[tuple] = field(default_factory=list)

    def __getattr__(self, name: str):
        # Reads (get_entry, list_entries, search_candidates, ...) go to the real journal.
        return getattr(self.journal, name)

    def add_entry(self, user: str, entry: Entry, vector: Sequence[float] | None,
                  state: dict | None = None) -> Entry:
        # The number is taken now, so the reply can say it even if another process (a second console
        # session of the same person) adds an entry before this event commits.
        entry.number = self.journal.reserve_number(user)
        self.ops.append(("add", entry, list(vector) if vector is not None else None, entry.number))
        return entry

    def update_entry(self, user: str, entry: Entry, vector: Sequence[float] | None) -> None:
        self.ops.append(("update", entry, list(vector) if vector is not None else None))

    def delete_entry(self, user: str, number: int) -> bool:
        if self.journal.get_entry(user, number) is None:
            return False
        self.ops.append(("delete", number))
        return True

    def set_timezone(self, user: str, zone: str) -> None:
        self.ops.append(("timezone", zone))

    def finish_week(self, user: str, week: int, state: str) -> None:
        """A programme week answered or skipped: committed with the entry that answers it."""
        self.ops.append(("week", week, state))

    def notices_seen(self, user: str, ids: list[int]) -> None:
        """Notices shown with this event's replies: removed in the same commit, so none is lost or doubled."""
        self.ops.append(("notices_seen", list(ids)))

    def save_state(self, user: str, state: dict) -> None:
        """The state is committed by the engine with the other writes; nothing to do here."""
