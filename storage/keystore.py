"""The keys folder: the master key and every person's key-encryption key, safe with many processes at once.

`keys/keys.db` is a small SQLite database beside `keys/master.key`, never part
of a backup of `spanner.db`. Each person's key-encryption key (KEK) is one row,
sealed by the master key, so creating, destroying and re-sealing keys are
ordinary transactions: two processes creating people at once both keep their
keys, and a process that forgets someone can never write an older copy of the
keys back (the old `user-keys.bin` was rewritten whole by every writer).

Forgetting records the digest of the person's wrapped data key in `shredded`
in the same transaction that destroys their KEK. That is how a database row
whose KEK is missing is told apart: shredded means forgotten (finish erasing
it), anything else means the keys folder is incomplete or belongs elsewhere.

Master-key rotation re-seals every row and the master check in one transaction
while holding the write lock. The new key is written to `master.key.new`
first and renamed over `master.key` after the commit; whoever next holds the
lock finishes or discards a half-done rotation by asking which key opens the
check. A process still holding the old key notices the check no longer opens
and reloads the key from disk, so it never seals anything with a retired key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .crypto import (AESGCM, CREDENTIAL_NAME, DecryptionError, KeyFileError, check_permissions,
                     credential_master_key, fsync_path, open_sealed, read_master_key_file, seal, write_private)

KEYS_DB = "keys.db"
MASTER = "master.key"
PENDING = "master.key.new"
LEGACY = "user-keys.bin"
LEGACY_AAD = b"spanner:user-keks:v1"
CHECK_AAD = b"spanner:keys-check"
CHECK_PLAINTEXT = b"spanner keys folder check v1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keks (user_id INTEGER PRIMARY KEY, sealed BLOB NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS shredded (digest TEXT PRIMARY KEY, user_id INTEGER NOT NULL, at REAL NOT NULL);
"""


def wrapped_digest(wrapped: bytes) -> str:
    """What `shredded` remembers of a forgotten person: a hash of their wrapped data key, nothing else."""
    return hashlib.sha256(wrapped).hexdigest()


def _kek_aad(user_id: int) -> bytes:
    return f"spanner:kek:{user_id}".encode()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    # A destroyed key is overwritten with zeros in the file, not left in a free page.
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create `path` holding `data`, complete from its first appearance; False if it already exists."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    write_private(tmp, data)
    try:
        os.link(tmp, path)  # atomic: two first starts at once cannot both create a master key
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


class KeyStore:
    """Per-user key-encryption keys in keys/keys.db, sealed by the master key. Thread-safe."""

    def __init__(self, keys_dir: Path, master: bytes, from_credential: bool, conn: sqlite3.Connection):
        self.dir = Path(keys_dir)
        self.master = master
        self.from_credential = from_credential
        self._conn = conn
        self._lock = threading.RLock()
        row = conn.execute("SELECT value FROM meta WHERE name = 'install_id'").fetchone()
        self.install_id: str = row[0].decode() if isinstance(row[0], bytes) else row[0]

    # ----- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, keys_dir: Path, may_create: bool, accept=None, may_create_store: bool | None = None) -> "KeyStore":
        """Open the keys folder. Creates the master key only when `may_create` (nothing is encrypted yet),
        and keys.db only when `may_create_store` (default: the same; no data key depends on a KEK yet).

        `accept(store)` raises KeyFileError if these keys do not belong with the caller's database;
        it runs before anything is written, so a wrong keys folder changes nothing on disk (an old
        user-keys.bin is moved into keys.db only once accepted).
        """
        keys_dir = Path(keys_dir)
        may_create_store = may_create if may_create_store is None else may_create_store
        for _attempt in range(5):
            master, from_credential = cls._read_master(keys_dir, may_create)
            db = keys_dir / KEYS_DB
            if db.exists():
                check_permissions(db)
                conn = _connect(db)
                store = cls(keys_dir, master, from_credential, conn)
                try:
                    store._settle_master()
                    if accept is not None:
                        accept(store)
                except BaseException:
                    store.close()
                    raise
                return store
            legacy = keys_dir / LEGACY
            if legacy.exists():
                # Built here or by another process at the same moment: either way, open it next time round.
                cls._build(keys_dir, master, from_credential, legacy, accept)
                continue
            if not may_create_store:
                raise KeyFileError(f"{db} is missing but the database holds encrypted data; fix: copy back the "
                                   "whole keys folder kept with this data (master.key and keys.db together)")
            cls._build(keys_dir, master, from_credential, None, accept)
        raise KeyFileError(f"{keys_dir}: the keys folder keeps changing under us; fix: stop other Spanner "
                           "processes and try again")

    @staticmethod
    def _read_master(keys_dir: Path, may_create: bool) -> tuple[bytes, bool]:
        key = credential_master_key()
        if key is not None:
            # The key comes from outside, but keys.db still lives here: a fresh install has no folder yet.
            if may_create and not keys_dir.exists():
                keys_dir.mkdir(parents=True, exist_ok=True)
                os.chmod(keys_dir, 0o700)
            return key, True
        path = keys_dir / MASTER
        if path.exists():
            return read_master_key_file(path), False
        if (keys_dir / PENDING).exists() and not may_create:
            # A rotation died after moving master.key? It never removes it; but be clear.
            raise KeyFileError(f"{path} is missing (only {PENDING} is there); fix: copy back the keys folder")
        if not may_create:
            raise KeyFileError(f"{path}: the master key is missing but the database holds encrypted data; fix: "
                               "copy back the keys folder kept apart from backups (without it the journals "
                               "cannot be read)")
        keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        _create_exclusive(path, AESGCM.generate_key(bit_length=256))
        fsync_path(keys_dir)
        return read_master_key_file(path), False

    @classmethod
    def _build(cls, keys_dir: Path, master: bytes, from_credential: bool, legacy: Path | None, accept) -> bool:
        """Make keys.db under a temporary name, then link it into place: it appears complete or not at all."""
        keks: dict[str, str] = {}
        if legacy is not None:
            check_permissions(legacy)
            blob = legacy.read_bytes()
            for candidate in (master, cls._pending_key(keys_dir)):
                if candidate is None:
                    continue
                try:
                    keks = json.loads(open_sealed(candidate, blob, LEGACY_AAD))
                    master = candidate
                    break
                except DecryptionError:
                    continue
            else:
                raise KeyFileError(f"{legacy}: cannot be opened with this master key; fix: copy back the "
                                   "master.key that belongs with it")
        tmp = keys_dir / f".{KEYS_DB}.{os.getpid()}.{threading.get_ident()}.tmp"
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = _connect(tmp)
        try:
            conn.executescript(SCHEMA)
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO meta VALUES ('install_id', ?)", (os.urandom(16).hex().encode(),))
            conn.execute("INSERT INTO meta VALUES ('check', ?)", (seal(master, CHECK_PLAINTEXT, CHECK_AAD),))
            if legacy is not None:
                conn.execute("INSERT INTO meta VALUES ('imported', ?)", (LEGACY.encode(),))
            for user_id, value in keks.items():
                kek = base64.b64decode(value)
                conn.execute("INSERT INTO keks VALUES (?, ?, ?)",
                             (int(user_id), seal(master, kek, _kek_aad(int(user_id))), now))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if accept is not None:
                accept(cls(keys_dir, master, from_credential, conn))
        except BaseException:
            conn.close()
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)
            raise
        conn.close()
        try:
            os.link(tmp, keys_dir / KEYS_DB)
            won = True
        except FileExistsError:
            won = False  # another process built it first: theirs stands
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)
        fsync_path(keys_dir)
        if legacy is not None and (keys_dir / KEYS_DB).exists():
            # The keys now live in keys.db. The old file must go: a stale copy would bring back the
            # keys of people forgotten from now on.
            legacy.unlink(missing_ok=True)
            pending = keys_dir / PENDING
            if won and pending.exists() and cls._pending_key(keys_dir) == master:
                os.replace(pending, keys_dir / MASTER)  # finish an old-style rotation that was cut short
            fsync_path(keys_dir)
        return won

    @staticmethod
    def _pending_key(keys_dir: Path) -> bytes | None:
        pending = keys_dir / PENDING
        if not pending.exists():
            return None
        try:
            return read_master_key_file(pending)
        except (KeyFileError, FileNotFoundError):
            return None

    # ----- transactions -----------------------------------------------------------------------

    @contextmanager
    def _write(self):
        """One write transaction on keys.db, holding its lock, with the current master key settled."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._settle_master_locked()
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _check_opens(self, key: bytes) -> bool:
        blob = self._conn.execute("SELECT value FROM meta WHERE name = 'check'").fetchone()[0]
        try:
            return open_sealed(key, blob, CHECK_AAD) == CHECK_PLAINTEXT
        except DecryptionError:
            return False

    def _settle_master(self) -> None:
        """Make sure our master key is the one keys.db is sealed with (reloading it if it was rotated)."""
        with self._lock:
            if self._check_opens(self.master):
                return
            with self._write():
                pass

    def _settle_master_locked(self) -> None:
        """Inside a write transaction: find the current master key, finishing or discarding a rotation.

        Holding the lock matters: a rotation holds it from writing master.key.new until its commit,
        so a master.key.new that does not open the check here is from a rotation that died.
        """
        pending = None if self.from_credential else self._pending_key(self.dir)
        if pending is not None:
            if self._check_opens(pending):
                try:  # the rotation committed but its rename has not happened (yet): finish it
                    os.replace(self.dir / PENDING, self.dir / MASTER)
                    fsync_path(self.dir)
                except FileNotFoundError:
                    pass  # its own process just did
                self.master = pending
                return
            (self.dir / PENDING).unlink(missing_ok=True)
        if self._check_opens(self.master):
            return
        if not self.from_credential:
            on_disk = read_master_key_file(self.dir / MASTER)
            if self._check_opens(on_disk):
                self.master = on_disk
                return
        where = f"systemd credential {CREDENTIAL_NAME}" if self.from_credential else str(self.dir / MASTER)
        raise KeyFileError(f"{where} does not open {self.dir / KEYS_DB}: the master key does not match this "
                           "database and keys folder; fix: copy back the master key kept with this keys folder")

    # ----- keys -------------------------------------------------------------------------------

    def get(self, user_id: int) -> bytes | None:
        """This person's KEK, or None if there is none (forgotten, or never created here)."""
        with self._lock:
            row = self._conn.execute("SELECT sealed FROM keks WHERE user_id = ?", (user_id,)).fetchone()
            if row is None:
                return None
            try:
                return open_sealed(self.master, row[0], _kek_aad(user_id))
            except DecryptionError:
                self._settle_master()  # rotated by another process: reload and read again
                row = self._conn.execute("SELECT sealed FROM keks WHERE user_id = ?", (user_id,)).fetchone()
                return None if row is None else open_sealed(self.master, row[0], _kek_aad(user_id))

    def create(self, user_id: int) -> bytes:
        """A fresh KEK for this person, committed before the caller commits anything that depends on it.

        Any older row for the same id is an orphan (a creation whose database commit never happened)
        and is replaced: the caller holds the database's write lock, so no live person owns it.
        """
        kek = AESGCM.generate_key(bit_length=256)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO keks VALUES (?, ?, ?)",
                         (user_id, seal(self.master, kek, _kek_aad(user_id)), time.time()))
        return kek

    def shred(self, user_id: int, wrapped: bytes | None, opens) -> None:
        """Forget: remember the digest of their wrapped data key, destroy their KEK; one transaction.

        `opens(kek)` says whether a KEK opens this person's wrapped data key, so a key that now
        belongs to someone else with the same id is never destroyed.
        """
        with self._write() as conn:
            if wrapped is not None:
                conn.execute("INSERT OR IGNORE INTO shredded VALUES (?, ?, ?)",
                             (wrapped_digest(wrapped), user_id, time.time()))
            row = conn.execute("SELECT sealed FROM keks WHERE user_id = ?", (user_id,)).fetchone()
            if row is not None:
                kek = open_sealed(self.master, row[0], _kek_aad(user_id))
                if wrapped is None or opens(kek):
                    conn.execute("DELETE FROM keks WHERE user_id = ?", (user_id,))
        self.checkpoint()

    def is_shredded(self, wrapped: bytes) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM shredded WHERE digest = ?",
                                      (wrapped_digest(wrapped),)).fetchone() is not None

    def rotate(self, after_seal=None) -> bytes:
        """Re-seal every KEK and the check under a new master key: all or nothing, then swap the files.

        `after_seal` is a test hook called after the new key is committed and before the rename.
        """
        if self.from_credential:
            raise KeyFileError(f"the master key comes from the systemd credential {CREDENTIAL_NAME}; fix: "
                               "rotate it where the credential is kept, not with spanner admin rotate-key")
        new = AESGCM.generate_key(bit_length=256)
        with self._write() as conn:
            write_private(self.dir / PENDING, new)  # on disk before anything is sealed with it
            rows = conn.execute("SELECT user_id, sealed FROM keks").fetchall()
            for user_id, sealed in rows:
                kek = open_sealed(self.master, sealed, _kek_aad(user_id))
                conn.execute("UPDATE keks SET sealed = ? WHERE user_id = ?",
                             (seal(new, kek, _kek_aad(user_id)), user_id))
            conn.execute("UPDATE meta SET value = ? WHERE name = 'check'", (seal(new, CHECK_PLAINTEXT, CHECK_AAD),))
        self.master = new
        if after_seal is not None:
            after_seal()
        try:
            os.replace(self.dir / PENDING, self.dir / MASTER)
        except FileNotFoundError:
            pass  # another process found the committed rotation and finished the rename
        fsync_path(self.dir)
        self.checkpoint()
        return new

    def checkpoint(self) -> None:
        """Empty keys.db's write-ahead log so a destroyed or re-sealed key leaves no old copy there."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def all_keks(self) -> dict[int, bytes]:
        """Every KEK, opened: for checking at start-up that this keys folder belongs with a database."""
        with self._lock:
            rows = self._conn.execute("SELECT user_id, sealed FROM keks").fetchall()
        out = {}
        for user_id, sealed in rows:
            try:
                out[user_id] = open_sealed(self.master, sealed, _kek_aad(user_id))
            except DecryptionError:
                continue  # counted as not opening by the caller
        return out

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM keks").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
