"""What a journal entry is: plain records that cross the Journal port, with no database in them.

Storage fills these when it decrypts an entry for its owner; the engine builds
them when a reflection or a note is saved. They live here, at the bottom layer,
so that storage depends on nothing above it while the engine (which sits above)
uses the same records. Only the standard library is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Answer:
    """One step's answer inside a reflection, kept separately."""

    step_id: str
    question: str
    answer: str = ""
    followup_question: str = ""
    followup_answer: str = ""
    skipped: bool = False


@dataclass
class Entry:
    """A journal entry as its owner sees it (decrypted by storage)."""

    kind: str  # "reflection" or "note"
    number: int = 0
    protocol: str = ""
    title: str = ""
    note: str = ""
    summary: str = ""
    tags: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    suggestion: str = ""
    week: int | None = None  # for a programme check-in: its week
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def full_text(self) -> str:
        """Everything the user wrote in this entry, for search and embedding."""
        parts = [self.title, self.note, self.summary, " ".join(self.tags)]
        for a in self.answers:
            parts += [a.answer, a.followup_answer]
        return "\n".join(p for p in parts if p)
