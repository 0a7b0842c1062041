"""The life of the data itself: forgetting a person, backups, restores and master-key rotation.

Forgetting deletes every row about the person (foreign keys cascade), destroys
their key-encryption key so no backup can unwrap their data key, and leaves
SQLite without a trace: secure_delete zeroes freed pages and a truncating WAL
checkpoint empties the log.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from .crypto import AESGCM, KeyFileError, KeyRing, write_private
from .journal import SqlJournal
from .models import Meta, User

KEYS = "keys"


def checkpoint(journal: SqlJournal) -> None:
    with journal.engine.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def forget(journal: SqlJournal, handle: str) -> bool:
    """Erase everything about this person. Returns False if there was no such person."""
    with journal.sessions.begin() as s:
        user = s.scalar(select(User).where(User.handle == handle))
        if user is None:
            return False
        user_id = user.id
        s.delete(user)  # entries, answers, state, keys, shares, comments, logs, inbox, outbox: cascade
    journal.keys.destroy(user_id)
    checkpoint(journal)
    return True


def backup(data_dir: Path, dest_dir: Path) -> Path:
    """A consistent online copy of the database (with the wrapped data keys), never the keys folder."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = dest_dir / f"spanner-{stamp}.db"
    src = sqlite3.connect(Path(data_dir) / "spanner.db")
    tmp = target.with_suffix(".partial")
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    finally:
        dst.close()
        src.close()
    tmp.chmod(0o600)
    tmp.replace(target)
    return target


def restore(backup_file: Path, data_dir: Path) -> Path:
    """Bring a backup into a data directory that has the keys folder and no database yet."""
    data_dir = Path(data_dir)
    target = data_dir / "spanner.db"
    if target.exists():
        raise KeyFileError(f"{target} already exists; fix: restore into an empty data directory")
    if not (data_dir / KEYS / "master.key").exists():
        raise KeyFileError(f"{data_dir / KEYS} has no master.key; fix: copy the keys folder you keep apart "
                           "from backups into the data directory first")
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backup_file, target)
    target.chmod(0o600)
    try:
        SqlJournal.open(data_dir).close()  # checks the key and migrates if the backup is older
    except Exception:
        target.unlink()
        raise
    return target


def rotate_master_key(data_dir: Path) -> None:
    """Re-seal every user's key-encryption key (and the key check) under a new master key.

    Crash-safe order: the new key is written beside the old one first, then the
    keystore and key check move to it, and only then does it replace the old file.
    """
    keys = Path(data_dir) / KEYS
    journal = SqlJournal.open(data_dir)
    try:
        new_key = AESGCM.generate_key(bit_length=256)
        pending = keys / "master.key.new"
        write_private(pending, new_key)
        journal.keys.rotate(new_key)
        with journal.sessions.begin() as s:
            s.get(Meta, "key_check").value = KeyRing(new_key).new_check()
        checkpoint(journal)
        pending.replace(keys / "master.key")
    finally:
        journal.close()
