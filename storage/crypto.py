"""Encryption at rest: AES-GCM per user; keys that unlock it live outside the database and its backups.

Journal text is encrypted under the owner's data key with associated data that
binds each ciphertext to its user, row and field: a ciphertext copied into
another row fails to decrypt.

Three layers, so that forgetting a user also makes old backups unreadable for them:
  data key (per user)  -> stored in the database, wrapped by that user's key-encryption key
  key-encryption key   -> stored in keys/user-keys.bin, sealed by the master key
  master key           -> keys/master.key (0600) or a systemd credential
Backups hold the database (with the wrapped data keys) but never the keys folder.
Forgetting a user deletes their key-encryption key, so no backup can unwrap their data key.
"""

from __future__ import annotations

import base64
import json
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
        raise KeyFileError(f"{path}: the master key is missing but the database exists; fix: restore the "
                           "keys folder from where you keep it safe (without it the journals cannot be read)")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    # O_EXCL + 0600 from the first byte: the key is never briefly world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key


CREDENTIAL_NAME = "spanner-master-key"


def master_key(data_dir: Path, create: bool) -> bytes:
    """The master key: a systemd credential (LoadCredential=spanner-master-key:...) if given, else the key file."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL_NAME).is_file():
        key = (Path(creds) / CREDENTIAL_NAME).read_bytes()
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"systemd credential {CREDENTIAL_NAME}: {len(key)} bytes, expected {KEY_BYTES}; "
                               "fix: load the key file itself as the credential")
        return key
    return load_or_create_master_key(Path(data_dir) / "keys" / "master.key", create=create)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionError("ciphertext did not verify") from None


def write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class KeyStore:
    """Per-user key-encryption keys in one file sealed by the master key; never part of a backup."""

    AAD = b"spanner:user-keks:v1"

    def __init__(self, path: Path, master: bytes):
        self.path = Path(path)
        self._master = master
        self._keks: dict[str, str] = {}
        if self.path.exists():
            _check_permissions(self.path)
            try:
                self._keks = json.loads(open_sealed(master, self.path.read_bytes(), self.AAD))
            except DecryptionError:
                raise KeyFileError(f"{self.path}: cannot be opened with this master key; fix: restore the "
                                   "master key that belongs with it") from None

    def get(self, user_id: int) -> bytes | None:
        value = self._keks.get(str(user_id))
        return base64.b64decode(value) if value else None

    def create(self, user_id: int) -> bytes:
        kek = AESGCM.generate_key(bit_length=256)
        self._keks[str(user_id)] = base64.b64encode(kek).decode()
        self.save()  # before the database commit that depends on it
        return kek

    def destroy(self, user_id: int) -> None:
        if self._keks.pop(str(user_id), None) is not None:
            self.save()

    def save(self, master: bytes | None = None) -> None:
        if master is not None:
            self._master = master
        write_private(self.path, seal(self._master, json.dumps(self._keks).encode(), self.AAD))

    def __len__(self) -> int:
        return len(self._keks)


class KeyRing:
    """Wraps and unwraps per-user data keys; caches unwrapped keys in memory."""

    CHECK_AAD = b"spanner:key-check"
    CHECK_PLAINTEXT = b"spanner master key check v1"

    def __init__(self, master_key: bytes, keystore: KeyStore | None = None):
        self._master = master_key
        self.keystore = keystore
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

    def _kek(self, user_id: int, create: bool = False) -> bytes:
        if self.keystore is None:  # scheme 1: data keys wrapped by the master key itself
            return self._master
        kek = self.keystore.get(user_id)
        if kek is None:
            if not create:
                raise KeyFileError("this user's key has been destroyed (the user was forgotten)")
            kek = self.keystore.create(user_id)
        return kek

    def new_user_key(self, user_id: int) -> bytes:
        """A fresh data key for a user, returned wrapped for storage."""
        key = AESGCM.generate_key(bit_length=256)
        self._cache[user_id] = key
        return seal(self._kek(user_id, create=True), key, self._wrap_aad(user_id))

    def user_key(self, user_id: int, wrapped: bytes) -> bytes:
        key = self._cache.get(user_id)
        if key is None:
            key = open_sealed(self._kek(user_id), wrapped, self._wrap_aad(user_id))
            self._cache[user_id] = key
        return key

    def rewrap_legacy(self, user_id: int, wrapped: bytes) -> bytes:
        """A scheme-1 data key (wrapped by the master key), wrapped again under a new per-user KEK."""
        key = open_sealed(self._master, wrapped, self._wrap_aad(user_id))
        return seal(self._kek(user_id, create=True), key, self._wrap_aad(user_id))

    def destroy(self, user_id: int) -> None:
        """Crypto-shred: without the KEK, no copy of the wrapped data key can be opened."""
        self._cache.pop(user_id, None)
        if self.keystore is not None:
            self.keystore.destroy(user_id)

    def rotate(self, new_master: bytes) -> None:
        self._master = new_master
        if self.keystore is not None:
            self.keystore.save(new_master)


def field_aad(user_id: int, table: str, row_uid: str, field: str) -> bytes:
    """Associated data binding a ciphertext to its user, table, row and field."""
    return f"{user_id}|{table}|{row_uid}|{field}".encode()


def recover_rotation(data_dir: Path) -> None:
    """If a rotation stopped half-way, finish it: the new key is the one the keystore now opens with."""
    keys = Path(data_dir) / "keys"
    pending = keys / "master.key.new"
    if not pending.exists():
        return
    new_key = load_or_create_master_key(pending, create=False)
    try:
        KeyStore(keys / "user-keys.bin", new_key)
    except KeyFileError:
        pending.unlink()  # the rotation never got as far as the keystore: the old key stands
        return
    pending.replace(keys / "master.key")
