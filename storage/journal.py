"""SqlJournal: the engine's Journal port over SQLAlchemy, encrypting every piece of journal text.

Each call is one short transaction. Text goes in and out through the owner's
data key (storage.crypto); the database only ever holds ciphertext, user ids,
numbers and timestamps.
"""

from __future__ import annotations

import json
import logging
import struct
import uuid
from pathlib import Path
from typing import Iterable, Sequence

from sqlalchemy import Engine, func, make_url, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .base import Cipher, Store
from .crypto import KeyFileError, KeyRing
from .db import checkpoint, describe, insert_new, make_engine, upgrade
from .keycheck import KEYS_ID, DatabaseError, open_keys_for, read_facts, read_server_facts, stale_wal
from .mentoring import finish_week
from .models import AnswerRow, ConversationState, EntryRow, Meta, User, UserKey, utcnow
from .notices import drop_notices
from .records import Answer, Entry

log = logging.getLogger(__name__)

ENTRY_FIELDS = ("title", "note", "summary", "tags", "suggestion")
#: The first 4 bytes of a vector blob holding several rows (the entry, then its passages): a float32 NaN,
#: which no embedding contains, so a blob of one plain vector (the older format) is never mistaken for it.
ROWS_MAGIC = b"\xff\xff\xff\xff"
ANSWER_FIELDS = ("question", "answer", "followup_question", "followup_answer")


class SqlJournal(Store):
    """Users, entries and conversation state in SQL; implements bot.engine.ports.Journal.

    It opens the database; every other store is built over it (SharingStore(journal), ...).
    """

    def __init__(self, engine: Engine, keyring: KeyRing):
        self.engine = engine
        self.keys = keyring
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, data_dir: Path, db_file: Path | None = None, url: str = "") -> "SqlJournal":
        """Open (and migrate) the database with the keys in data_dir/keys.

        The database is spanner.db in data_dir, or the server `url` names (storage.url: PostgreSQL);
        the keys stay in data_dir either way, never in the database.
        The keys folder is checked against the database before anything is written (storage.keycheck):
        a foreign, partial or wrong keys folder stops here with one line and changes nothing.
        `db_file` opens another file with this data directory's keys (restore uses it).
        """
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        if url.startswith("sqlite"):  # a SQLite URL is the file it names
            db_file, url = Path(make_url(url).database), ""
        if url:
            engine = make_engine(url)
            try:
                facts = read_server_facts(engine, describe(url))
            except BaseException:
                engine.dispose()
                raise
            return cls._open_with(engine, data_dir, facts)
        db_file = Path(db_file) if db_file else data_dir / "spanner.db"
        wal = stale_wal(db_file)
        if wal is not None:
            raise DatabaseError(f"{wal} is left over from a database that is no longer there and would be "
                                f"replayed into a new one; fix: move {wal.name} (and {db_file.name}-shm) out of "
                                f"{db_file.parent}, or put the database it belongs to back")
        facts = read_facts(db_file)
        return cls._open_with(None, data_dir, facts, db_file)

    @classmethod
    def _open_with(cls, engine: Engine | None, data_dir: Path, facts, db_file: Path | None = None) -> "SqlJournal":
        try:
            keyring, forgotten = open_keys_for(data_dir, facts)
        except BaseException:
            if engine is not None:
                engine.dispose()
            raise
        try:
            engine = engine or make_engine(f"sqlite:///{db_file}")
            upgrade(engine)
            journal = cls(engine, keyring)
            journal._bind_keys()
            journal._finish_forgetting(forgotten)
            journal._upgrade_key_scheme()
        except BaseException:
            keyring.close()
            if engine is not None:
                engine.dispose()
            raise
        return journal

    def _bind_keys(self) -> None:
        """Record which keys folder this database belongs with, so a foreign one is recognised."""
        install_id = self.keys.keystore.install_id.encode()
        with self.sessions.begin() as s:
            # ON CONFLICT DO NOTHING: on PostgreSQL several processes may start on a new database at once.
            s.execute(insert_new(s, Meta.__table__).values(key=KEYS_ID, value=install_id))
            if bytes(s.get(Meta, KEYS_ID).value) != install_id:
                raise KeyFileError("the keys folder changed while Spanner was starting; fix: start again")

    def _finish_forgetting(self, user_ids: list[int]) -> None:
        """People whose keys were destroyed but whose rows are still here (a crash mid-forget, or a restored
        backup from before they were forgotten): their rows go too, so they stay forgotten."""
        if not user_ids:
            return
        with self.sessions.begin() as s:
            for user_id in user_ids:
                key = s.get(UserKey, user_id)
                if key is not None and self.keys.keystore.is_shredded(key.wrapped):
                    s.delete(s.get(User, user_id))
        checkpoint(self.engine)

    def _upgrade_key_scheme(self) -> None:
        """Data keys from before 0003 were wrapped by the master key; give each user their own KEK."""
        with self.sessions.begin() as s:
            for row in s.scalars(select(UserKey).where(UserKey.scheme == 1)):
                row.wrapped, row.scheme = self.keys.rewrap_legacy(row.user_id, row.wrapped), 2

    def close(self) -> None:
        self.engine.dispose()
        self.keys.close()

    # ----- people ---------------------------------------------------------------

    def ensure_user(self, user: str, display_name: str = "") -> bool:
        """Make sure this person exists; False if an admin has removed their access."""
        with self.sessions.begin() as s:
            return self.person(s, user, create=True, display_name=display_name).revoked_at is None

    @staticmethod
    def _write_entry(s: Session, cipher: Cipher, row: EntryRow, entry: Entry,
                     vector: Sequence[float] | None) -> None:
        values = {"title": entry.title, "note": entry.note, "summary": entry.summary,
                  "tags": json.dumps(entry.tags), "suggestion": entry.suggestion}
        for name in ENTRY_FIELDS:
            setattr(row, f"{name}_ct", cipher.seal("entries", row.uid, name, values[name]))
        row.vector_ct = None if vector is None else cipher.seal("entries", row.uid, "vector", _pack(vector))
        row.answers.clear()
        s.flush()
        for pos, a in enumerate(entry.answers):
            aid = f"{row.uid}:{pos}"
            ans = AnswerRow(position=pos, step_id=a.step_id, skipped=a.skipped)
            for name in ANSWER_FIELDS:
                setattr(ans, f"{name}_ct", cipher.seal("entry_answers", aid, name, getattr(a, name)))
            row.answers.append(ans)

    @staticmethod
    def _read_entry(cipher: Cipher, row: EntryRow) -> Entry:
        text = {name: cipher.open("entries", row.uid, name, getattr(row, f"{name}_ct")) for name in ENTRY_FIELDS}
        answers = []
        for a in row.answers:
            aid = f"{row.uid}:{a.position}"
            fields = {name: cipher.open("entry_answers", aid, name, getattr(a, f"{name}_ct"))
                      for name in ANSWER_FIELDS}
            answers.append(Answer(step_id=a.step_id, skipped=a.skipped, **fields))
        return Entry(kind=row.kind, number=row.number, protocol=row.protocol, title=text["title"],
                     note=text["note"], summary=text["summary"], tags=json.loads(text["tags"]),
                     suggestion=text["suggestion"], answers=answers, week=row.programme_week,
                     created_at=row.created_at, updated_at=row.updated_at)

    @staticmethod
    def _vectors(cipher: Cipher, row: EntryRow) -> list[list[float]]:
        """The entry's vector, then one per passage (none for an entry saved with one vector)."""
        if row.vector_ct is None:
            return []
        return _unpack(cipher.open_bytes("entries", row.uid, "vector", row.vector_ct))

    @staticmethod
    def _vector(cipher: Cipher, row: EntryRow) -> list[float] | None:
        """The entry's own vector only (its passages' are read when asked for: passage_vectors)."""
        if row.vector_ct is None:
            return None
        return _unpack(cipher.open_bytes("entries", row.uid, "vector", row.vector_ct), first_only=True)[0]

    # ----- entries ------------------------------------------------------------

    def add_entry(self, user: str, entry: Entry, vector: Sequence[float] | None,
                  state: dict | None = None) -> Entry:
        with self.sessions.begin() as s:
            u = self.person(s, user, create=True)
            cipher = self.cipher(s, u)
            self._add(s, cipher, u, entry, vector)
            if state is not None:
                self._write_state(s, cipher, u, state)
        return entry

    def _add(self, s: Session, cipher: Cipher, u: User, entry: Entry, vector: Sequence[float] | None,
             number: int | None = None) -> Entry:
        if number is None:
            number = _take_number(s, u)
        now = utcnow()
        row = EntryRow(uid=uuid.uuid4().hex, user_id=u.id, number=number, kind=entry.kind,
                       protocol=entry.protocol, created_at=now, updated_at=now, programme_week=entry.week)
        s.add(row)
        self._write_entry(s, cipher, row, entry, vector)
        entry.number, entry.created_at, entry.updated_at = number, now, now
        return entry

    def update_entry(self, user: str, entry: Entry, vector: Sequence[float] | None) -> None:
        with self.sessions.begin() as s:
            u = self.person(s, user)
            row = self._row(s, u, entry.number)
            if row is None:
                raise LookupError("no such entry")
            row.updated_at = utcnow()
            self._write_entry(s, self.cipher(s, u), row, entry, vector)

    @staticmethod
    def _entries(u: User):
        """The query for one user's entries, answers loaded with them: every read starts here."""
        return select(EntryRow).options(selectinload(EntryRow.answers)).where(EntryRow.user_id == u.id)

    def _row(self, s: Session, u: User | None, number: int) -> EntryRow | None:
        if u is None:
            return None
        return s.scalar(self._entries(u).where(EntryRow.number == number))

    def get_entry(self, user: str, number: int) -> Entry | None:
        with self.sessions() as s:
            u = self.person(s, user)
            row = self._row(s, u, number)
            return None if row is None else self._read_entry(self.cipher(s, u), row)

    def list_entries(self, user: str, limit: int) -> list[Entry]:
        with self.sessions() as s:
            u = self.person(s, user)
            if u is None:
                return []
            cipher = self.cipher(s, u)
            rows = s.scalars(self._entries(u)
                             .order_by(EntryRow.created_at.desc(), EntryRow.number.desc()).limit(limit))
            return [self._read_entry(cipher, r) for r in rows]

    def count_entries(self, user: str) -> int:
        with self.sessions() as s:
            u = self.person(s, user)
            if u is None:
                return 0
            return s.scalar(select(func.count()).select_from(EntryRow).where(EntryRow.user_id == u.id)) or 0

    def delete_entry(self, user: str, number: int) -> bool:
        with self.sessions.begin() as s:
            row = self._row(s, self.person(s, user), number)
            if row is None:
                return False
            s.delete(row)
        checkpoint(self.engine)
        return True

    def search_candidates(self, user: str, numbers: Iterable[int] | None = None,
                          ) -> Iterable[tuple[Entry, Sequence[float] | None]]:
        """This user's entries (all, or those numbered), decrypted in memory: no plaintext index on disk."""
        with self.sessions() as s:
            u = self.person(s, user)
            if u is None:
                return []
            cipher = self.cipher(s, u)
            query = self._entries(u)
            if numbers is not None:
                query = query.where(EntryRow.number.in_(list(numbers)))
            return [(self._read_entry(cipher, r), self._vector(cipher, r)) for r in s.scalars(query)]

    def journal_stamp(self, user: str) -> tuple | None:
        """(entries, highest number, latest change) without decrypting anything; None for nobody.

        Any add, edit or delete by any process changes it (numbers are never reused, and an edit
        moves updated_at forward), so an in-memory index compares it before trusting itself.
        """
        with self.sessions() as s:
            u = self.person(s, user)
            if u is None:
                return None
            count, top, latest = s.execute(select(func.count(), func.max(EntryRow.number),
                                                  func.max(EntryRow.updated_at))
                                           .where(EntryRow.user_id == u.id)).one()
            return count, top or 0, latest

    def entry_stamps(self, user: str) -> dict[int, object]:
        """Number -> when it last changed, for each of this user's entries (nothing decrypted)."""
        with self.sessions() as s:
            u = self.person(s, user)
            if u is None:
                return {}
            rows = s.execute(select(EntryRow.number, EntryRow.updated_at).where(EntryRow.user_id == u.id))
            return {number: when for number, when in rows}

    def passage_vectors(self, user: str, number: int) -> list[list[float]]:
        """The vectors of one entry's passages, saved with it (encrypted), in the order it was split."""
        with self.sessions() as s:
            u = self.person(s, user)
            row = None if u is None else s.scalar(select(EntryRow).where(EntryRow.user_id == u.id,
                                                                        EntryRow.number == number))
            return [] if row is None else self._vectors(self.cipher(s, u), row)[1:]

    def next_number(self, user: str) -> int:
        with self.sessions() as s:
            u = self.person(s, user)
            return u.next_number if u else 1

    def reserve_number(self, user: str) -> int:
        """Take the user's next entry number now, for an entry committed later (engine.unit).

        A reply says "#N" before its entry is committed; another process adding an entry for the
        same person meanwhile must not take N. An event that then fails leaves a gap, never a clash.
        """
        with self.sessions.begin() as s:
            return _take_number(s, self.person(s, user, create=True))

    def apply(self, user: str, ops: list[tuple], state: dict) -> list[Entry]:
        """The engine's unit of work: entry writes, time zone and state, committed together."""
        added = []
        with self.sessions.begin() as s:
            u = self.person(s, user, create=True)
            cipher = self.cipher(s, u)
            for op in ops:
                if op[0] == "add":
                    added.append(self._add(s, cipher, u, op[1], op[2], op[3] if len(op) > 3 else None))
                elif op[0] == "update":
                    row = self._row(s, u, op[1].number)
                    if row is not None:
                        row.updated_at = op[1].updated_at = utcnow()
                        self._write_entry(s, cipher, row, op[1], op[2])
                elif op[0] == "delete":
                    row = self._row(s, u, op[1])
                    if row is not None:
                        s.delete(row)
                elif op[0] == "timezone":
                    u.timezone = op[1]
                elif op[0] == "week":
                    finish_week(s, u, op[1], op[2])
                elif op[0] == "notices_seen":
                    drop_notices(s, u, op[1])
                else:
                    raise ValueError(f"unknown journal operation {op[0]!r}")
            self._write_state(s, cipher, u, state)
        if any(op[0] in ("update", "delete") for op in ops):
            checkpoint(self.engine)  # the old text leaves the write-ahead log too, not only the table
        return added

    def display_name(self, user: str) -> str:
        with self.sessions() as s:
            u = self.person(s, user)
            return (u.display_name or u.handle.split(":", 1)[-1]) if u else user

    def get_timezone(self, user: str) -> str | None:
        with self.sessions() as s:
            u = self.person(s, user)
            return u.timezone if u else None

    # ----- conversation state -------------------------------------------------

    @staticmethod
    def _write_state(s: Session, cipher: Cipher, u: User, state: dict) -> None:
        row = s.get(ConversationState, u.id)
        blob = cipher.seal("conversation_state", u.id, "state", json.dumps(state))
        if row is None:
            s.add(ConversationState(user_id=u.id, state_ct=blob, updated_at=utcnow()))
        else:
            row.state_ct, row.updated_at = blob, utcnow()

    def load_state(self, user: str) -> dict:
        with self.sessions() as s:
            u = self.person(s, user)
            row = s.get(ConversationState, u.id) if u else None
            if row is None:
                return {}
            return json.loads(self.cipher(s, u).open("conversation_state", u.id, "state", row.state_ct))

    def save_state(self, user: str, state: dict) -> None:
        with self.sessions.begin() as s:
            u = self.person(s, user, create=True)
            self._write_state(s, self.cipher(s, u), u, state)


def _take_number(s: Session, u: User) -> int:
    """The person's next entry number, taken in one statement: on PostgreSQL, where transactions run side by
    side, a read-then-write would let two processes take the same number (SQLite runs writers one at a time)."""
    return s.scalar(update(User).where(User.id == u.id).values(next_number=User.next_number + 1)
                    .returning(User.next_number)) - 1


def _pack(vector) -> bytes:
    """One vector as float32s; several (the entry's, then its passages') behind ROWS_MAGIC and a count."""
    if len(vector) and not hasattr(vector[0], "__len__"):
        return struct.pack(f"<{len(vector)}f", *vector)
    rows = [list(v) for v in vector]
    flat = [x for v in rows for x in v]
    return ROWS_MAGIC + struct.pack(f"<I{len(flat)}f", len(rows), *flat)


def _unpack(raw: bytes, first_only: bool = False) -> list[list[float]]:
    if not raw.startswith(ROWS_MAGIC):
        return [list(struct.unpack(f"<{len(raw) // 4}f", raw))]
    (count,) = struct.unpack_from("<I", raw, 4)
    if count == 0:
        return [None] if first_only else []
    width = (len(raw) - 8) // 4 // count
    rows = 1 if first_only else count
    values = struct.unpack_from(f"<{rows * width}f", raw, 8)
    return [list(values[i * width:(i + 1) * width]) for i in range(rows)]
