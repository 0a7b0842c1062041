"""What every store shares: one database, one key ring, and the two doors to a person.

Each store (journal, sharing, mentoring, notices, transport, people) is a Store
over the same database. A store finds a person only through `person()` (their
row, created with their data key and first role when asked) and seals or opens
their text only through `cipher()`. So how a person is found, created and how
their data key is unwrapped is written once, here, and no store needs another
store's private helpers.
"""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from .db import insert_new
from .crypto import KeyFileError, KeyRing, field_aad, open_sealed, seal
from .models import User, UserKey, UserRole


def name_of(person: User) -> str:
    """How a person is named to others: their display name, else their handle."""
    return person.display_name or person.handle


class Cipher:
    """One person's data key, bound to them: seals and opens a field of a row in a table."""

    def __init__(self, key: bytes, user_id: int):
        self._key = key
        self.user_id = user_id

    def _aad(self, table: str, row_id: object, field: str) -> bytes:
        return field_aad(self.user_id, table, str(row_id), field)

    def seal(self, table: str, row_id: object, field: str, data: str | bytes) -> bytes:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return seal(self._key, raw, self._aad(table, row_id, field))

    def open_bytes(self, table: str, row_id: object, field: str, blob: bytes) -> bytes:
        return open_sealed(self._key, blob, self._aad(table, row_id, field))

    def open(self, table: str, row_id: object, field: str, blob: bytes) -> str:
        return self.open_bytes(table, row_id, field, blob).decode("utf-8")


class Store:
    """A view of the database for one resource. Build one with another store to share its database."""

    engine: Engine
    keys: KeyRing
    sessions: sessionmaker

    def __init__(self, over: "Store"):
        self.engine, self.keys, self.sessions = over.engine, over.keys, over.sessions

    def person(self, s: Session, handle: str, create: bool = False, display_name: str = "",
               role: str = "spanner") -> User | None:
        """The person with this handle; with `create`, a new one (data key and first role) if none.

        `create` is asked only by writes about this person, so it also locks their row until commit
        (FOR UPDATE on PostgreSQL): one person's writes from several processes take turns, as every
        write does on SQLite (BEGIN IMMEDIATE), and a read-then-write (their conversation state, their
        next entry number) never races another process's.
        """
        query = select(User).where(User.handle == handle)
        if create:
            query = query.with_for_update()
        user = s.scalar(query)
        if user is None and create:
            # ON CONFLICT DO NOTHING: on PostgreSQL another process may create the same person meanwhile;
            # then its row (committed by the time our insert returns) is the one.
            new_id = s.scalar(insert_new(s, User.__table__).values(handle=handle, display_name=display_name[:200],
                                                                   next_number=1).returning(User.id))
            user = s.scalar(query)
            if new_id is None:
                return user
            s.add(UserKey(user_id=user.id, wrapped=self.keys.new_user_key(user.id), scheme=2))
            s.add(UserRole(user_id=user.id, role=role))
            s.flush()
        return user

    def cipher(self, s: Session, person: User) -> Cipher:
        """The cipher for this person's text (their data key, unwrapped once and cached)."""
        wrapped = s.get(UserKey, person.id)
        if wrapped is None:
            raise KeyFileError("this user's data key is gone (the user was forgotten)")
        return Cipher(self.keys.user_key(person.id, wrapped.wrapped), person.id)
