"""The life of the data itself: forgetting a person, backups, restores and master-key rotation.

Forgetting deletes every row about the person (foreign keys cascade), destroys
their key-encryption key so no backup can unwrap their data key, and leaves
SQLite without a trace: secure_delete zeroes freed pages and a truncating WAL
checkpoint empties the log. PostgreSQL has neither: a deleted row survives until
VACUUM, and in the server's WAL and backups, so there the destroyed key is what
erases them. The key is destroyed while this process still holds
the database's write lock, so nobody can be given the same id (and a new key)
in between; if the process dies before its commit, the next start finishes the
erasure (storage.keycheck).

Backups and restores fail with one line naming the problem and the fix, and
leave no partial file behind: each is written under a temporary name, checked,
and only then renamed into place.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from .crypto import fsync_path
from .db import StorageFull, checkpoint as checkpoint_engine, describe, is_disk_full
from .journal import SqlJournal
from .keycheck import DatabaseError, stale_wal
from .models import EntryRow, User, UserKey

KEYS = "keys"
DB_NAME = "spanner.db"


class BackupError(DatabaseError):
    """A backup or restore could not be done: one line naming the problem and the fix; nothing left behind."""


def checkpoint(journal: SqlJournal) -> None:
    checkpoint_engine(journal.engine)


def forget(journal: SqlJournal, handle: str) -> bool:
    """Erase everything about this person. Returns False if there was no such person."""
    with journal.sessions.begin() as s:
        user = journal.person(s, handle)
        if user is None:
            return False
        user_id = user.id
        key = s.get(UserKey, user_id)
        wrapped = key.wrapped if key is not None else None
        s.delete(user)  # entries, answers, state, keys, shares, comments, logs, inbox, outbox: cascade
        s.flush()
        # Inside our write transaction: their key goes before anyone else can be created with their id.
        journal.keys.destroy(user_id, wrapped)
    checkpoint(journal)
    return True


def _remove(*paths: Path) -> None:
    for path in paths:
        for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)


def _no_space(where: Path) -> BackupError:
    return BackupError(f"{where}: no space left on the disk; nothing was written; fix: free some space there "
                       "(or choose another folder), then run the command again")


def _link_unique(tmp: Path, folder: Path, stem: str) -> Path:
    """Give the finished file its name: stem.db, or stem-1.db... if two backups share a second."""
    for n in range(1000):
        target = folder / (f"{stem}.db" if n == 0 else f"{stem}-{n}.db")
        try:
            os.link(tmp, target)  # fails if the name is taken: never overwrites another backup
            return target
        except FileExistsError:
            continue
    raise BackupError(f"{folder}: too many backups named {stem}*; fix: move some elsewhere")


def refuse_on_server(url: str, what: str) -> None:
    """`spanner backup` and `restore` copy the SQLite file; a PostgreSQL database is the server's to copy."""
    if url:
        raise BackupError(f"spanner {what} copies the SQLite file, but storage.url is a PostgreSQL database "
                          f"({describe(url)}); fix: use pg_dump and pg_restore for the database, and back up the "
                          "keys folder (data_dir/keys) apart from it")


def backup(data_dir: Path, dest_dir: Path, url: str = "") -> Path:
    """A consistent online copy of the database (with the wrapped data keys), never the keys folder."""
    refuse_on_server(url, "backup")
    source = Path(data_dir) / DB_NAME
    if not source.is_file():
        raise BackupError(f"{source} does not exist, so there is nothing to back up; fix: check paths.data_dir "
                          "(or SPANNER_DATA_DIR) points at Spanner's data directory")
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise _no_space(dest_dir) from None
        raise BackupError(f"{dest_dir}: cannot create the backup folder ({exc.strerror}); fix: choose a folder "
                          "you can write to") from None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    tmp = dest_dir / f".spanner-{stamp}.{os.getpid()}.partial"
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            finally:
                dst.close()
        finally:
            src.close()
        os.chmod(tmp, 0o600)
        fsync_path(tmp)
        target = _link_unique(tmp, dest_dir, f"spanner-{stamp}")
        tmp.unlink()
        fsync_path(dest_dir)
    except BaseException as exc:
        _remove(tmp)
        if is_disk_full(exc):
            raise _no_space(dest_dir) from None
        raise
    return target


def _check_backup_file(path: Path, named: Path) -> None:
    """A complete, undamaged Spanner database, or one line saying what it is instead (naming the file `named`:
    the backup the person gave, not the working copy checked here)."""
    damaged = BackupError(f"{named} is damaged or incomplete (truncated?), so it cannot be restored; fix: restore "
                          "another backup")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        raise damaged from None
    if result != [("ok",)]:
        raise damaged
    if not {"users", "user_keys", "alembic_version"} <= tables:
        raise BackupError(f"{named} is not a Spanner backup; fix: give a spanner-*.db file written by "
                          "spanner backup")


def restore(backup_file: Path, data_dir: Path, url: str = "") -> tuple[Path, dict]:
    """Bring a backup into a data directory that has the keys folder and no database yet.

    Returns the database path and counts: people, entries, and people forgotten since the backup
    was taken (their rows are erased from the restored copy, so they stay forgotten).
    """
    refuse_on_server(url, "restore")
    backup_file, data_dir = Path(backup_file), Path(data_dir)
    target = data_dir / DB_NAME
    if not backup_file.is_file():
        raise BackupError(f"{backup_file}: no such backup file; fix: give the path of a spanner-*.db file "
                          "written by spanner backup")
    if target.exists():
        raise BackupError(f"{target} already exists; fix: restore into an empty data directory")
    leftovers = [p for p in (stale_wal(target), Path(f"{target}-shm")) if p is not None and p.exists()]
    if leftovers:
        raise BackupError(f"{leftovers[0]} is left over from an earlier database and would be mixed into the "
                          f"restored one; fix: move {target.name}-wal and {target.name}-shm out of {data_dir} "
                          "first")
    if not (data_dir / KEYS / "master.key").exists():
        raise BackupError(f"{data_dir / KEYS} has no master.key; fix: copy the keys folder you keep apart "
                          "from backups into the data directory first")
    tmp = data_dir / f".{DB_NAME}.restoring"
    _remove(tmp)
    try:
        shutil.copyfile(backup_file, tmp)
        os.chmod(tmp, 0o600)
        _check_backup_file(tmp, backup_file)
        conn = sqlite3.connect(tmp)
        try:
            before = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        finally:
            conn.close()
        # Checks the keys belong with this backup (changing nothing if not), migrates an older
        # backup, and erases anyone forgotten since it was taken.
        journal = SqlJournal.open(data_dir, db_file=tmp)
        try:
            with journal.sessions() as s:
                people = s.scalar(select(func.count()).select_from(User)) or 0
                entries = s.scalar(select(func.count()).select_from(EntryRow)) or 0
        finally:
            journal.close()
        fsync_path(tmp)
        os.replace(tmp, target)
        fsync_path(data_dir)
    except BaseException as exc:
        _remove(tmp)
        if is_disk_full(exc) or isinstance(exc, StorageFull):
            raise _no_space(data_dir) from None
        raise
    return target, {"people": people, "entries": entries, "forgotten": before - people}


def rotate_master_key(data_dir: Path, url: str = "") -> None:
    """Re-seal every user's key-encryption key under a new master key (storage.keystore.KeyStore.rotate).

    One transaction on keys/keys.db, safe with other Spanner processes running: they notice the new
    key and reload it. A crash before the commit leaves the old key in force; after it, the new one.
    """
    journal = SqlJournal.open(data_dir, url=url)  # checks the keys belong with this database first
    try:
        journal.keys.keystore.rotate()
    finally:
        journal.close()
