"""Encryption at rest: AES-GCM per user; keys that unlock it live outside the database and its backups.

Journal text is encrypted under the owner's data key with associated data that
binds each ciphertext to its user, row and field: a ciphertext copied into
another row fails to decrypt.

Three layers, so that forgetting a user also makes old backups unreadable for them:
  data key (per user)  -> stored in the database, wrapped by that user's key-encryption key
  key-encryption key   -> stored in keys/keys.db (storage.keystore), sealed by the master key
  master key           -> keys/master.key (0600) or a systemd credential
Backups hold the database (with the wrapped data keys) but never the keys folder.
Forgetting a user destroys their key-encryption key, so no backup can unwrap their data key.
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


def check_permissions(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: key file is readable by others (mode {mode:o}); "
                           f"fix: chmod 600 {path}")


def read_master_key_file(path: Path) -> bytes:
    path = Path(path)
    check_permissions(path)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: not a Spanner master key ({len(key)} bytes, expected {KEY_BYTES}); "
                           "fix: copy back the right key file")
    return key


CREDENTIAL_NAME = "spanner-master-key"


def credential_master_key() -> bytes | None:
    """The master key from a systemd credential (LoadCredential=spanner-master-key:...), if one is given."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not (creds and (Path(creds) / CREDENTIAL_NAME).is_file()):
        return None
    key = (Path(creds) / CREDENTIAL_NAME).read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"systemd credential {CREDENTIAL_NAME}: {len(key)} bytes, expected {KEY_BYTES}; "
                           "fix: load the key file itself as the credential")
    return key


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionError("ciphertext did not verify") from None


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries (a rename or a new file), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two writers never share one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


class KeyRing:
    """Wraps and unwraps per-user data keys; caches unwrapped keys in memory.

    The cache is keyed by the wrapped key itself, not only the user id: SQLite may give a new
    person the id of someone forgotten, and they must never be handed the old person's key.
    """

    def __init__(self, master_key: bytes | None = None, keystore=None):
        self.keystore = keystore  # storage.keystore.KeyStore, or None for the scheme-1 layout
        self._master = master_key
        self._cache: dict[tuple[int, bytes], bytes] = {}

    @property
    def master(self) -> bytes:
        return self.keystore.master if self.keystore is not None else self._master

    @staticmethod
    def _wrap_aad(user_id: int) -> bytes:
        return f"spanner:user-key:{user_id}".encode()

    def _kek(self, user_id: int) -> bytes:
        if self.keystore is None:  # scheme 1: data keys wrapped by the master key itself
            return self.master
        kek = self.keystore.get(user_id)
        if kek is None:
            raise KeyFileError("this user's key has been destroyed (the user was forgotten)")
        return kek

    def new_user_key(self, user_id: int) -> bytes:
        """A fresh data key for a user, returned wrapped for storage (its KEK is committed first)."""
        key = AESGCM.generate_key(bit_length=256)
        kek = self.keystore.create(user_id) if self.keystore is not None else self.master
        wrapped = seal(kek, key, self._wrap_aad(user_id))
        self._cache[(user_id, wrapped)] = key
        return wrapped

    def user_key(self, user_id: int, wrapped: bytes) -> bytes:
        key = self._cache.get((user_id, wrapped))
        if key is None:
            key = open_sealed(self._kek(user_id), wrapped, self._wrap_aad(user_id))
            self._cache[(user_id, wrapped)] = key
        return key

    def opens(self, user_id: int, kek: bytes, wrapped: bytes) -> bool:
        try:
            open_sealed(kek, wrapped, self._wrap_aad(user_id))
            return True
        except DecryptionError:
            return False

    def rewrap_legacy(self, user_id: int, wrapped: bytes) -> bytes:
        """A scheme-1 data key (wrapped by the master key), wrapped again under a new per-user KEK."""
        key = open_sealed(self.master, wrapped, self._wrap_aad(user_id))
        new = seal(self.keystore.create(user_id), key, self._wrap_aad(user_id))
        self._cache[(user_id, new)] = key
        return new

    def destroy(self, user_id: int, wrapped: bytes | None) -> None:
        """Crypto-shred: without the KEK, no copy of the wrapped data key can be opened."""
        self._cache = {k: v for k, v in self._cache.items() if k[0] != user_id}
        if self.keystore is not None:
            self.keystore.shred(user_id, wrapped, lambda kek: wrapped is None or self.opens(user_id, kek, wrapped))

    def close(self) -> None:
        if self.keystore is not None:
            self.keystore.close()


def field_aad(user_id: int, table: str, row_uid: str, field: str) -> bytes:
    """Associated data binding a ciphertext to its user, table, row and field."""
    return f"{user_id}|{table}|{row_uid}|{field}".encode()
