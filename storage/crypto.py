"""Encryption at rest: AES-GCM per user, data keys wrapped by a master key kept outside the database.

Journal text is encrypted under the owner's data key with associated data that
binds each ciphertext to its user, row and field: a ciphertext copied into
another row fails to decrypt. Data keys are stored wrapped by the master key,
which lives in a 0600 file in the data directory (never in the database or in
backups), so a copied database file or backup is unreadable on its own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32


class KeyFileError(Exception):
    """A user-facing key problem: the message says what is wrong and what to do."""


class DecryptionError(Exception):
    """A ciphertext did not verify: wrong key, wrong row, or tampering."""


def _check_permissions(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: key file is readable by others (mode {mode:o}); "
                        f"fix: chmod 600 {path}")


def load_or_create_master_key(path: Path, create: bool = True) -> bytes:
    """Read the master key file; on first run, create it with mode 0600."""
    path = Path(path)
    if path.exists():
        _check_permissions(path)
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"{path}: not a Spanner master key ({len(key)} bytes, expected {KEY_BYTES}); "
                            "fix: restore the right key file")
        return key
    if not create:
        raise KeyFileError(f"{path}: master key file is missing; fix: restore it from where you keep it safe")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    # O_EXCL + 0600 from the first byte: the key is never briefly world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionError("ciphertext did not verify") from None


class KeyRing:
    """Wraps and unwraps per-user data keys with the master key; caches unwrapped keys in memory."""

    CHECK_AAD = b"spanner:key-check"
    CHECK_PLAINTEXT = b"spanner master key check v1"

    def __init__(self, master_key: bytes):
        self._master = master_key
        self._cache: dict[int, bytes] = {}

    def new_check(self) -> bytes:
        return seal(self._master, self.CHECK_PLAINTEXT, self.CHECK_AAD)

    def verify_check(self, blob: bytes) -> bool:
        try:
            return open_sealed(self._master, blob, self.CHECK_AAD) == self.CHECK_PLAINTEXT
        except DecryptionError:
            return False

    @staticmethod
    def _wrap_aad(user_id: int) -> bytes:
        return f"spanner:user-key:{user_id}".encode()

    def new_user_key(self, user_id: int) -> bytes:
        """A fresh data key for a user, returned wrapped for storage."""
        key = AESGCM.generate_key(bit_length=256)
        self._cache[user_id] = key
        return seal(self._master, key, self._wrap_aad(user_id))

    def user_key(self, user_id: int, wrapped: bytes) -> bytes:
        key = self._cache.get(user_id)
        if key is None:
            key = open_sealed(self._master, wrapped, self._wrap_aad(user_id))
            self._cache[user_id] = key
        return key

    def forget(self, user_id: int) -> None:
        self._cache.pop(user_id, None)


def field_aad(user_id: int, table: str, row_uid: str, field: str) -> bytes:
    """Associated data binding a ciphertext to its user, table, row and field."""
    return f"{user_id}|{table}|{row_uid}|{field}".encode()
