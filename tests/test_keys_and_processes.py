"""Keys survive many processes at once, and a keys folder that does not belong is refused without a change.

These run the real `spanner` command, several at a time, on one data directory,
as an operator would: chats while admins invite, forget and rotate beside them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess

import pytest

from bot.engine.records import Entry
from conftest import SPANNER, STORAGE_ONLY, LiveChat, run_cli, write_config
from storage import lifecycle
from storage.crypto import KeyFileError, seal
from storage.journal import SqlJournal
from storage.keystore import LEGACY_AAD



@pytest.fixture
def quick_cfg(tmp_path, model_path, storage_url):
    def make(data_dir):
        return write_config(tmp_path / f"{data_dir.name}.toml", data_dir, model_path, STORAGE_ONLY, storage_url)
    return make


def _chats_at_once(cfg, lines: dict[str, str]) -> dict[str, str]:
    """Start one `spanner chat` per user at the same moment; return what each printed."""
    procs = {user: subprocess.Popen([SPANNER, "chat", "--config", str(cfg), "--user", user],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for user in lines}
    return {user: proc.communicate(lines[user].encode(), timeout=120)[0].decode() for user, proc in procs.items()}


def _with_notes(data, notes: dict[str, str]) -> None:
    """A data directory whose people (console:NAME) each wrote one note."""
    journal = SqlJournal.open(data)
    for user, note in notes.items():
        journal.add_entry(f"console:{user}", Entry(kind="note", note=note), None)
    journal.close()


def _snapshot(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.both_databases
def test_people_created_by_six_processes_at_once_all_keep_their_keys(tmp_path, quick_cfg, open_journal):
    data = tmp_path / "data"
    cfg = quick_cfg(data)
    users = [f"u{i}" for i in range(6)]
    # A fresh data dir (and, on PostgreSQL, a database no process has opened): keys made at once too.
    out = _chats_at_once(cfg, {u: f"note from {u}\n" for u in users})
    assert all("Saved as quick note #1" in out[u] for u in users), out
    journal = open_journal(data)
    assert {u: journal.get_entry(f"console:{u}", 1).note for u in users} == {u: f"note from {u}" for u in users}
    assert len(journal.keys.keystore) == 6
    journal.close()


def _to_old_layout(data) -> None:
    """Turn a data directory into the layout before keys.db: every KEK in user-keys.bin, sealed whole."""
    journal = SqlJournal.open(data)
    keks = journal.keys.keystore.all_keks()
    master = journal.keys.master
    journal.close()
    blob = seal(master, json.dumps({str(u): base64.b64encode(k).decode() for u, k in keks.items()}).encode(),
                LEGACY_AAD)
    fd = os.open(data / "keys" / "user-keys.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    for suffix in ("", "-wal", "-shm"):
        (data / "keys" / f"keys.db{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(data / "spanner.db") as db:
        db.execute("delete from meta where key = 'keys_id'")  # older databases were not bound to a keys folder
    db.close()


def test_an_install_with_user_keys_bin_moves_to_keys_db_with_four_chats_starting_at_once(tmp_path, quick_cfg):
    data = tmp_path / "data"
    cfg = quick_cfg(data)
    _with_notes(data, {u: f"{u} wrote this before the upgrade" for u in ("a", "b", "c", "d")})
    _to_old_layout(data)
    out = _chats_at_once(cfg, {u: f"{u} after the upgrade\n/journal\n" for u in ("a", "b", "c", "d")})
    for user in ("a", "b", "c", "d"):
        assert f"{user} wrote this before the upgrade" in out[user] and "Saved as quick note #2" in out[user], out
    keys = data / "keys"
    assert not (keys / "user-keys.bin").exists(), "a stale copy of the keys would undo a later forget"
    assert (keys / "keys.db").stat().st_mode & 0o077 == 0
    journal = SqlJournal.open(data)
    assert len(journal.keys.keystore) == 4
    assert journal.get_entry("console:c", 2).note == "c after the upgrade"
    journal.close()


def test_forget_while_another_process_creates_people_stays_forgotten_also_in_backups(tmp_path, quick_cfg):
    data = tmp_path / "data"
    cfg = quick_cfg(data)
    _with_notes(data, {"x": "X's words, to be forgotten"})
    before = lifecycle.backup(data, tmp_path / "backups")
    creators = subprocess.Popen([SPANNER, "chat", "--config", str(cfg), "--user", "newcomer"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    forget = run_cli(["admin", "forget", "console:x", "--yes", "--config", str(cfg)])
    others = _chats_at_once(cfg, {f"n{i}": "hello\n" for i in range(3)})
    creators.communicate(b"a newcomer's note\n", timeout=60)
    assert forget.returncode == 0, forget.stderr.decode()
    assert all("Saved as quick note #1" in o for o in others.values())
    after = lifecycle.backup(data, tmp_path / "backups")
    for backup in (before, after):
        target = tmp_path / f"restore-{backup.stem}"
        shutil.copytree(data / "keys", target / "keys")
        lifecycle.restore(backup, target)
        restored = SqlJournal.open(target)
        assert restored.get_entry("console:x", 1) is None
        restored.close()
    journal = SqlJournal.open(data)
    assert journal.get_entry("console:x", 1) is None
    assert journal.get_entry("console:newcomer", 1).note == "a newcomer's note"
    journal.close()


def test_rotating_the_key_while_a_session_is_open_then_it_forgets_keeps_everyone_readable(tmp_path, quick_cfg):
    data = tmp_path / "data"
    cfg = quick_cfg(data)
    _with_notes(data, {u: f"{u}'s note" for u in ("alice", "bob")})
    session = LiveChat(cfg, user="leaver")
    session.wait_for("Hello leaver")
    session.send("A note before the rotation.")
    session.wait_for("quick note #1")
    rotated = run_cli(["admin", "rotate-key", "--config", str(cfg)])
    assert rotated.returncode == 0, rotated.stderr.decode()
    session.send("/forget")
    session.wait_for("Are you sure?")
    session.send("1")
    session.wait_for("Last check")
    session.send("1")
    session.wait_for("has been erased")
    session.send("Hello again after being forgotten.")  # the same session carries on as a newcomer
    session.wait_for("quick note #1")
    session.proc.stdin.close()
    session.proc.wait(30)
    out = _chats_at_once(cfg, {"alice": "/journal\n", "bob": "/journal\n", "carol": "new here\n"})
    assert "alice's note" in out["alice"] and "bob's note" in out["bob"], out
    assert "Saved as quick note #1" in out["carol"]


@pytest.fixture
def two_installs(tmp_path, quick_cfg):
    """Two data directories, each with people, each with its own keys folder."""
    made = []
    for name in ("ours", "theirs"):
        data = tmp_path / name
        _with_notes(data, {"pat": f"Pat's note in {name}", "sam": f"Sam's note in {name}"})
        made.append(data)
    return made


@pytest.mark.parametrize("bound", [True, False], ids=["bound", "older-unbound-database"])
def test_a_foreign_keys_folder_stops_start_up_and_restore_in_one_line_changing_nothing(
        tmp_path, two_installs, quick_cfg, bound):
    ours, theirs = two_installs
    backup = lifecycle.backup(ours, tmp_path / "backups")
    if not bound:
        with sqlite3.connect(ours / "spanner.db") as db:
            db.execute("delete from meta where key = 'keys_id'")
        db.close()
    shutil.rmtree(ours / "keys")
    shutil.copytree(theirs / "keys", ours / "keys")
    before = _snapshot(ours)
    result = run_cli(["chat", "--user", "pat", "--config", str(quick_cfg(ours))], stdin=b"/journal\n")
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "fix:" in err, err
    assert ("another Spanner install" if bound else "does not open the keys of 2 of 2 people") in err
    assert _snapshot(ours) == before
    # restore with the wrong keys: refused, and no database (or part of one) is left behind
    target = tmp_path / "restore-here"
    shutil.copytree(theirs / "keys", target / "keys")
    restore = run_cli(["restore", str(backup), "--data-dir", str(target)])
    assert restore.returncode == 2 and len(restore.stderr.decode().strip().splitlines()) == 1
    assert "another Spanner install" in restore.stderr.decode()
    assert sorted(p.name for p in target.iterdir()) == ["keys"]


@pytest.mark.parametrize("damage, expected", [
    ("no keys.db", "keys.db is missing"),
    ("no master.key", "master key is missing"),
    ("older keys.db", "lacks the keys of 1 of 3 people"),
    ("master.key of another install", "does not match"),
])
def test_a_partial_or_wrong_keys_folder_stops_start_up_in_one_line_changing_nothing(
        tmp_path, two_installs, quick_cfg, damage, expected):
    ours, theirs = two_installs
    keys = ours / "keys"
    if damage == "no keys.db":
        (keys / "keys.db").unlink()
    elif damage == "no master.key":
        (keys / "master.key").unlink()
    elif damage == "older keys.db":
        older = tmp_path / "older-keys"
        shutil.copytree(keys, older)
        _with_notes(ours, {"newer": "joined after the copy"})
        shutil.rmtree(keys)
        shutil.copytree(older, keys)
    else:
        shutil.copy2(theirs / "keys" / "master.key", keys / "master.key")
    before = _snapshot(ours)
    result = run_cli(["chat", "--user", "pat", "--config", str(quick_cfg(ours))], stdin=b"/journal\n")
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and expected in err and "fix:" in err, err
    assert _snapshot(ours) == before
    with pytest.raises(KeyFileError):
        SqlJournal.open(ours)
