"""The single-host install as docs/deploy.md describes it: the master key as a systemd credential.

systemd hands a service its credentials (LoadCredential=, SetCredentialEncrypted=)
as files in $CREDENTIALS_DIRECTORY, readable by that service only, kept off the
data disk. Spanner then reads the master key from there and never writes one
into data/keys; without it, or with another key, it stops in one line.
"""

from __future__ import annotations

import os

from conftest import STORAGE_ONLY, every_file_bytes, run_cli, write_config


def test_the_master_key_from_a_systemd_credential_opens_the_journal_and_never_lands_in_the_data_folder(
        tmp_path, model_path):
    data = tmp_path / "data"
    cfg = str(write_config(tmp_path / "c.toml", data, model_path, STORAGE_ONLY))
    creds = tmp_path / "credentials"  # what systemd makes: a private folder, one file per credential
    creds.mkdir(mode=0o700)
    key = os.urandom(32)
    (creds / "spanner-master-key").write_bytes(key)
    os.chmod(creds / "spanner-master-key", 0o400)
    service = {"CREDENTIALS_DIRECTORY": str(creds)}
    # A fresh install: no data/ yet (the keys folder for keys.db is made, private, on the first start).

    first = run_cli(["chat", "--config", cfg, "--user", "kim"], b"A note about the rota meeting.\n", env=service)
    assert first.returncode == 0, first.stderr.decode()
    assert (data / "keys" / "keys.db").is_file() and not (data / "keys" / "master.key").exists()
    assert (data / "keys").stat().st_mode & 0o777 == 0o700
    assert not [p for p, raw in every_file_bytes(data) if key in raw]  # the key itself is nowhere in data/
    again = run_cli(["chat", "--config", cfg, "--user", "kim"], b"/journal\n", env=service)
    assert b"rota meeting" in again.stdout, again.stderr.decode()

    without = run_cli(["chat", "--config", cfg, "--user", "kim"], b"/journal\n",
                      env={"CREDENTIALS_DIRECTORY": str(tmp_path / "none")})
    assert without.returncode == 2 and len(without.stderr.decode().strip().splitlines()) == 1
    assert "master key is missing" in without.stderr.decode() and b"rota meeting" not in without.stdout
    assert not (data / "keys" / "master.key").exists()  # nothing new was made in its place

    os.chmod(creds / "spanner-master-key", 0o600)
    (creds / "spanner-master-key").write_bytes(os.urandom(32))  # another install's key
    wrong = run_cli(["chat", "--config", cfg, "--user", "kim"], b"/journal\n", env=service)
    assert wrong.returncode == 2 and "spanner-master-key does not open" in wrong.stderr.decode()
    assert b"rota meeting" not in wrong.stdout

    (creds / "spanner-master-key").write_bytes(key)
    rotate = run_cli(["admin", "rotate-key", "--config", cfg], env=service)
    assert rotate.returncode == 2 and "rotate it where the credential is kept" in rotate.stderr.decode()
    assert b"rota meeting" in run_cli(["chat", "--config", cfg, "--user", "kim"], b"/journal\n", env=service).stdout
