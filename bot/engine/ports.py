"""The engine's ports: the small Protocols through which it reaches the outside.

The engine depends on these shapes only. storage/ implements Journal, People,
Notices, Sharing and Mentoring, bot/llm implements Generator, bot/retrieval
implements Literature and Embedder, bot/voice implements Transcriber. Tests
may pass their own implementations where they must control a boundary (a
clock, a model that fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Literal, Protocol, Sequence

from .records import Entry

Status = Literal["ok", "unavailable", "failed", "timeout"]


@dataclass(frozen=True)
class Generation:
    """What the model gave back, or why it gave nothing."""

    text: str
    status: Status = "ok"


@dataclass(frozen=True)
class Suggestion:
    """One idea from a literature card, always with its source."""

    card_id: str
    title: str
    citation: str
    idea: str
    themes: tuple[str, ...]
    similarity: float


@dataclass(frozen=True)
class Finding:
    """Something in a text that may identify someone: where it is and what kind (person, postcode...)."""

    start: int
    end: int
    kind: str
    score: float = 1.0


class Clock(Protocol):
    def now(self) -> datetime: ...


class Journal(Protocol):
    """A user's own journal and conversation state. Decrypts for its owner only."""

    def ensure_user(self, user: str, display_name: str = "") -> bool:
        """Create the user if new; False if their access was removed (they are then told so, nothing more)."""

    def add_entry(self, user: str, entry: Entry, vector: Sequence[float] | None,
                  state: dict | None = None) -> Entry:
        """Save a new entry, numbered per user; with `state`, save that state in the same transaction."""

    def update_entry(self, user: str, entry: Entry, vector: Sequence[float] | None) -> None: ...

    def get_entry(self, user: str, number: int) -> Entry | None: ...

    def list_entries(self, user: str, limit: int) -> list[Entry]: ...

    def count_entries(self, user: str) -> int: ...

    def delete_entry(self, user: str, number: int) -> bool: ...

    def search_candidates(self, user: str, numbers: Iterable[int] | None = None,
                          ) -> Iterable[tuple[Entry, Sequence[float] | None]]:
        """Entries (all, or those numbered) with their own vectors, decrypted in memory."""

    def journal_stamp(self, user: str) -> tuple | None:
        """(entries, highest number, latest change), read without decrypting; None for nobody."""

    def entry_stamps(self, user: str) -> dict[int, object]:
        """Number -> when that entry last changed, read without decrypting."""

    def passage_vectors(self, user: str, number: int) -> list[list[float]]:
        """The vectors of an entry's passages, saved with it (`vector` may be the entry's, then its
        passages': see search_index.passages)."""

    def load_state(self, user: str) -> dict: ...

    def save_state(self, user: str, state: dict) -> None: ...

    def next_number(self, user: str) -> int:
        """The number the user's next entry will get."""

    def reserve_number(self, user: str) -> int:
        """Take the user's next entry number now (committed at once), for an entry saved later."""

    def apply(self, user: str, ops: list[tuple], state: dict) -> list[Entry]:
        """Apply buffered writes ("add" with its reserved number, "update", "delete", "timezone", "week",
        "notices_seen") and the state in one transaction."""

    def get_timezone(self, user: str) -> str | None: ...

    def display_name(self, user: str) -> str: ...


class Generator(Protocol):
    """The local model. `task` names a template in prompts/templates."""

    @property
    def available(self) -> bool: ...

    async def generate(self, user: str, task: str, variables: dict[str, str],
                       on_partial: Callable[[str], None] | None = None) -> Generation: ...


TranscriptStatus = Literal["ok", "empty", "too_long", "undecodable", "unavailable", "failed"]


@dataclass(frozen=True)
class Transcript:
    """What was heard in a clip, or why nothing was: the audio is gone either way."""

    text: str
    status: TranscriptStatus = "ok"
    seconds: float = 0.0  # the clip's length, once decoded


class Transcriber(Protocol):
    """Speech to text on the host. One heavy job at a time, shared with the Generator."""

    @property
    def available(self) -> bool: ...

    async def transcribe(self, user: str, audio: bytes, max_seconds: float,
                         on_wait: Callable[[int], None] | None = None) -> Transcript:
        """Transcribe audio held in memory; `on_wait(ahead)` is called when the job has to wait its turn."""


class Literature(Protocol):
    """Public literature only: never user journals."""

    def suggest(self, query: str, avoid: tuple[str, ...] = (), themes: tuple[str, ...] = ()) -> Suggestion | None:
        """The best card for the query, or None; `avoid` holds "title, citation" of cards not to repeat;
        with `themes`, only cards carrying one of them."""

    def themes(self, query: str, limit: int = 3) -> list[str]: ...


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class Charts(Protocol):
    """Draws a chart of counts over time as a PNG (bot/charts.py, with matplotlib)."""

    def bars_over_time(self, title: str, periods: Sequence[str], series: dict[str, Sequence[int]],
                       y_label: str) -> bytes: ...


class People(Protocol):
    """Who someone is allowed to be: their roles, and joining by an invitation code."""

    def roles(self, user: str) -> tuple[str, ...]: ...

    def redeem(self, code: str, user: str, display_name: str = "") -> str | None:
        """Use an invitation: the role it gives, or None if unknown, used by someone else or expired."""


class Notices(Protocol):
    """Messages waiting for a person (a check-in, a comment, a note), each with `id`, `kind`, `payload`."""

    def notify(self, user: str, payload: dict, kind: str = "", source: str | None = None) -> bool: ...

    def pending(self, user: str) -> list: ...


class Sharing(Protocol):
    """Consent-based sharing, supervision and comment threads. Readers only ever reach active shares."""

    def readers_for(self, owner: str) -> list: ...

    def is_reader(self, user: str) -> bool: ...

    def share(self, owner: str, number: int, reader: str, scope: str, labelled: bool, content: str) -> int: ...

    def unshare(self, owner: str, number: int) -> int: ...

    def shares_of(self, owner: str) -> list: ...

    def access_log(self, owner: str) -> list: ...

    def thread(self, owner: str, number: int) -> list:
        """Every comment and answer on the owner's entry, oldest first."""

    def visible(self, viewer: str) -> list: ...

    def team(self, supervisor: str) -> list: ...

    def read(self, viewer: str, share_id: int): ...

    def comment(self, author: str, share_id: int, text: str):
        """Add to a share's thread; who should hear of it (recipient, number, by_reader), or None."""

    def other_party(self, user: str, share_id: int) -> str | None: ...

    def latest_to(self, user: str, number: int | None = None):
        """The newest comment someone else made in this person's threads (share_id, when), or None."""

    def comments_for_owner(self, owner: str) -> list: ...


class Lifecycle(Protocol):
    """Erasing a person for good."""

    def forget(self, user: str) -> bool: ...


class Mentoring(Protocol):
    """Pairings, schedules, progress (counts and dates) and notes between mentor and mentee."""

    def pairing_of(self, mentee: str) -> tuple[str, str, object] | None: ...

    def pairing(self, mentee: str): ...

    def pairing_by_id(self, pairing_id: int, member: str): ...

    def mentees_of(self, mentor: str) -> list: ...

    def answered_since(self, mentee: str, since) -> tuple[int, int]: ...

    def current_week(self, mentee: str) -> int: ...

    def due_week(self, mentee: str, now) -> int | None: ...

    def post(self, author: str, pairing_id: int, text: str):
        """A note to the other side of the pairing; who should hear of it (recipient, to_mentee), or None."""

    def latest_note_to(self, user: str): ...

    def notes_of(self, mentee: str) -> list: ...

    def schedule(self, user: str, kind: str): ...

    def set_schedule(self, user: str, kind: str, days: tuple[int, ...], at: str, zone: str, now) -> object: ...

    def stop(self, user: str, kind: str) -> bool: ...

    def pause(self, user: str, until, kinds: tuple[str, ...] = ("checkin",)) -> bool: ...

    def resume(self, user: str, now, kinds: tuple[str, ...] = ("checkin",)) -> bool: ...

    def snooze(self, user: str, until) -> bool: ...

    def finish_week(self, user: str, week: int, state: str) -> None: ...


class Deidentifier(Protocol):
    """Finds people, organisations and identifiers in a person's words, and writes replacements.

    Loaded only when someone shares or exports (the language model behind it is not small)."""

    def find(self, texts: Sequence[str]) -> list[list[Finding]]:
        """For each text, what in it may identify someone."""

    def replace(self, text: str, swaps: Sequence[tuple[int, int, str]]) -> str:
        """The text with each (start, end) span replaced by its label."""


class FormPrinter(Protocol):
    """Lays a portfolio out as a PDF form (bot/documents)."""

    def pdf(self, document) -> bytes:
        """The PDF of a portfolio.Document."""
