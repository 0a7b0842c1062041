"""Does this keys folder belong with this database? Checked before anything is written, at start-up and restore.

A keys folder from another install, an older or partial copy, or a master key
that does not match would otherwise be discovered one person at a time ("your
key has been destroyed"), after start-up had already written to the database.
So the database is read first (read-only: which keys folder it was bound to,
and every wrapped data key), then every wrapped data key is tried against the
keys folder:

  - opens                          -> fine
  - no KEK, digest in `shredded`   -> the person was forgotten: finish erasing their rows
  - anything else                  -> this keys folder is wrong: stop with one line, change nothing
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from .crypto import KeyFileError, KeyRing
from .keystore import KeyStore

KEYS_ID = "keys_id"  # meta row in spanner.db: the install id of the keys folder it belongs with


class DatabaseError(Exception):
    """A user-facing database problem (not a Spanner database, corrupt, stale files): one line with the fix."""


@dataclass
class DatabaseFacts:
    """What a database says about its keys, read without changing it."""

    path: Path | str  # the database file, or a PostgreSQL server and database (storage.db.describe)
    exists: bool = False
    keys_id: str | None = None
    user_keys: list[tuple[int, bytes, int]] = field(default_factory=list)  # (user id, wrapped key, scheme)

    @property
    def encrypted(self) -> bool:
        """Whether anything in it depends on an existing master key."""
        return bool(self.user_keys) or self.keys_id is not None

    @property
    def needs_keks(self) -> bool:
        """Whether anything in it depends on existing key-encryption keys (keys.db or user-keys.bin)."""
        return any(scheme != 1 for _, _, scheme in self.user_keys) or self.keys_id is not None


def stale_wal(db_file: Path) -> Path | None:
    """A -wal file beside a database that is not there: SQLite would replay it into a new one."""
    wal = Path(f"{db_file}-wal")
    if not db_file.exists() and wal.exists() and wal.stat().st_size > 0:
        return wal
    return None


def read_facts(db_file: Path) -> DatabaseFacts:
    facts = DatabaseFacts(Path(db_file))
    if not facts.path.exists():
        return facts
    facts.exists = True
    try:
        # Read-write but only read: a read-only connection would leave -wal and -shm files behind,
        # while the last ordinary connection to close removes them. Nothing is written.
        conn = sqlite3.connect(facts.path, timeout=30)
    except sqlite3.Error:
        raise DatabaseError(f"{facts.path}: cannot be opened as a database; fix: restore it from a backup "
                            "(spanner restore)") from None
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (KEYS_ID,)).fetchone()
            if row is not None:
                facts.keys_id = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
        if "user_keys" in tables:
            columns = {r[1] for r in conn.execute("PRAGMA table_info(user_keys)")}
            scheme = "scheme" if "scheme" in columns else "1"  # before 0003 every key was scheme 1
            facts.user_keys = [(int(u), bytes(w), int(s)) for u, w, s in
                               conn.execute(f"SELECT user_id, wrapped, {scheme} FROM user_keys")]
        elif tables and "alembic_version" not in tables:
            raise DatabaseError(f"{facts.path}: not a Spanner database; fix: point paths.data_dir at Spanner's "
                                "data directory")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{facts.path}: the database is damaged ({type(exc).__name__}); fix: restore it "
                            "from a backup (spanner restore)") from None
    finally:
        conn.close()
    return facts


def read_server_facts(engine: Engine, where: str) -> DatabaseFacts:
    """The same facts from a database server (PostgreSQL), read in one read-only transaction."""
    facts = DatabaseFacts(where, exists=True)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        if "meta" in tables:
            value = conn.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": KEYS_ID}).scalar()
            if value is not None:
                facts.keys_id = bytes(value).decode()
        if "user_keys" in tables:
            columns = {c["name"] for c in inspect(conn).get_columns("user_keys")}
            scheme = "scheme" if "scheme" in columns else "1"
            facts.user_keys = [(int(u), bytes(w), int(s)) for u, w, s in
                               conn.execute(text(f"SELECT user_id, wrapped, {scheme} FROM user_keys"))]
        elif tables and "alembic_version" not in tables:
            raise DatabaseError(f"{where}: not a Spanner database; fix: point storage.url at an empty database "
                                "or Spanner's own")
        conn.rollback()
    return facts


def check_keys(store: KeyStore, facts: DatabaseFacts) -> list[int]:
    """Raise KeyFileError unless the keys belong with the database; returns the ids of forgotten people."""
    keys_dir = store.dir
    if facts.keys_id is not None and facts.keys_id != store.install_id:
        raise KeyFileError(f"{keys_dir} belongs to another Spanner install, not to {facts.path}; fix: copy back "
                           "the keys folder kept with this data (nothing was changed)")
    ring = KeyRing(keystore=store)
    keks = store.all_keks()
    missing = wrong = 0
    forgotten: list[int] = []
    for user_id, wrapped, scheme in facts.user_keys:
        if scheme == 1:  # wrapped by the master key itself (before 0003)
            if not ring.opens(user_id, store.master, wrapped):
                wrong += 1
            continue
        kek = keks.get(user_id)
        if kek is not None and ring.opens(user_id, kek, wrapped):
            continue
        if store.is_shredded(wrapped):
            forgotten.append(user_id)
        elif kek is None:
            missing += 1
        else:
            wrong += 1
    people = len(facts.user_keys)
    if wrong:
        raise KeyFileError(f"{keys_dir} does not open the keys of {wrong} of {people} people in {facts.path} "
                           "(a keys folder from another install?); fix: copy back the keys folder kept with "
                           "this data (nothing was changed)")
    if missing:
        raise KeyFileError(f"{keys_dir} lacks the keys of {missing} of {people} people in {facts.path} (an older "
                           "or partial copy of the keys folder?); fix: copy back the complete keys folder kept "
                           "with this data (nothing was changed)")
    return forgotten


def open_keys_for(data_dir: Path, facts: DatabaseFacts) -> tuple[KeyRing, list[int]]:
    """The key ring for this database, after checking the keys folder belongs with it."""
    forgotten: list[int] = []

    def accept(store: KeyStore) -> None:
        forgotten[:] = check_keys(store, facts)

    store = KeyStore.open(Path(data_dir) / "keys", may_create=not facts.encrypted, accept=accept,
                          may_create_store=not facts.needs_keks)
    return KeyRing(keystore=store), forgotten
