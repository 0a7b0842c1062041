"""Faults end in one clear line, lose nothing confirmed, leave no partial files, and pass once fixed (promise 19).

A full disk (a small tmpfs this test mounts, as root), damaged, truncated and
missing backups, a stale write-ahead log, a data directory with no database,
and an unexpected error, whose log shows where it happened but never what
anyone wrote.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
import subprocess
import time
import uuid

import pytest

from bot.engine.records import Entry
from conftest import STORAGE_ONLY, Chat, LiveChat, run_cli, write_config
from storage import lifecycle
from storage.journal import SqlJournal

DISK_FULL = "the server's disk is full"


def _one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    err = result.stderr.decode().strip()
    assert result.returncode == 2, (result.returncode, err)
    assert len(err.splitlines()) == 1 and "fix:" in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs of our own: a disk that really fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder) -> "os.PathLike":
    """Fill the disk under `folder` to the last byte; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _next_answer(live: LiveChat, start: int, timeout: float = 30) -> str:
    """The chat's next answer after byte `start`: a confirmation or the full-disk notice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = live.proc.stdout.read()
        if chunk:
            live.seen += chunk
        answer = live.seen[start:].decode(errors="replace")
        if re.search(r"quick note #\d+\.", answer) or DISK_FULL in answer:
            return answer
        time.sleep(0.02)
    raise AssertionError(f"no answer; got {live.seen[start:].decode()[-300:]!r}")


def test_a_full_disk_is_said_in_one_line_loses_nothing_and_works_again_once_freed(tmp_path, small_disk, model_path):
    data = small_disk / "data"
    cfg = write_config(tmp_path / "c.toml", data, model_path, STORAGE_ONLY)
    live = LiveChat(cfg, user="ada")
    live.wait_for("Hello ada")
    confirmed = {}
    for i in range(3):
        live.send(f"Note {i} before the disk filled.")
        live.wait_for(f"quick note #{i + 1}")
        confirmed[i + 1] = f"Note {i} before the disk filled."
    filler = _fill(small_disk)
    # SQLite may still fit a few writes into pages it already has; keep writing until it cannot.
    said_full = False
    for i in range(200):
        start = len(live.seen)
        text = f"Note {i} written on a full disk " + "x" * 2000
        live.send(text)
        answer = _next_answer(live, start)
        if DISK_FULL in answer:
            said_full = True
            break
        confirmed[int(re.search(r"quick note #(\d+)", answer).group(1))] = text
    assert said_full, "the disk never filled"
    assert live.proc.poll() is None, "the chat exited on a full disk"
    assert "Traceback" not in live.seen.decode()
    # A second process starting on the full disk says so in one line too, and changes nothing.
    fresh = write_config(tmp_path / "fresh.toml", small_disk / "fresh-data", model_path, STORAGE_ONLY)
    _one_line(run_cli(["chat", "--user", "bo", "--config", str(fresh)], stdin=b"hi\n"), "disk", "full")
    backup = run_cli(["backup", str(small_disk / "backups"), "--config", str(cfg)])
    _one_line(backup, "no space left")
    assert not [p for p in (small_disk / "backups").glob("*")], "a partial backup was left behind"
    # Once the disk has room again, the same session carries on.
    filler.unlink()
    start = len(live.seen)
    live.send("Written once the disk had room again.")
    out = _next_answer(live, start)
    assert "Saved as quick note #" in out, out
    live.proc.stdin.close()
    live.proc.wait(30)
    journal = SqlJournal.open(data)
    for number, text in confirmed.items():
        assert journal.get_entry("console:ada", number).note == text
    assert any(e.note == "Written once the disk had room again." for e in journal.list_entries("console:ada", 500))
    journal.close()
    assert "Traceback" not in out


@pytest.fixture
def backed_up(tmp_path):
    """A data directory with a note, its backup, and an empty place to restore into (with the keys)."""
    data = tmp_path / "data"
    journal = SqlJournal.open(data)
    journal.add_entry("console:kit", Entry(kind="note", note="kept through every fault"), None)
    journal.close()
    backup = lifecycle.backup(data, tmp_path / "backups")
    target = tmp_path / "restore-here"
    shutil.copytree(data / "keys", target / "keys")
    return backup, target


@pytest.mark.parametrize("damage, expected", [
    ("missing", "no such backup file"),
    ("truncated", "damaged or incomplete"),
    ("corrupt", "damaged or incomplete"),
    ("not a database", "damaged or incomplete"),
])
def test_a_missing_truncated_or_corrupt_backup_is_refused_in_one_line_leaving_nothing(backed_up, damage, expected):
    backup, target = backed_up
    given = backup
    if damage == "missing":
        given = backup.with_name("spanner-nope.db")
    elif damage == "truncated":
        given = backup.with_name("truncated.db")
        given.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    elif damage == "corrupt":
        raw = bytearray(backup.read_bytes())
        for page in range(4096, len(raw), 4096 * 3):  # bit rot in every third page's header
            raw[page: page + 16] = os.urandom(16)
        given = backup.with_name("corrupt.db")
        given.write_bytes(bytes(raw))
    else:
        given = backup.with_name("notes.db")
        given.write_text("these are not the notes you are looking for\n" * 200)
    _one_line(run_cli(["restore", str(given), "--data-dir", str(target)]), expected, str(given))  # names it
    assert sorted(p.name for p in target.iterdir()) == ["keys"]
    ok = run_cli(["restore", str(backup), "--data-dir", str(target)])  # the real backup still restores
    assert ok.returncode == 0 and b"1 people, 1 entries" in ok.stdout, ok.stderr.decode()


def test_a_stale_write_ahead_log_is_refused_at_restore_and_start_up_until_moved(backed_up, tmp_path, model_path):
    backup, target = backed_up
    # A WAL left by an earlier database (its spanner.db deleted): SQLite would replay it into the new one.
    other = tmp_path / "other"
    journal = SqlJournal.open(other)
    journal.add_entry("console:old", Entry(kind="note", note="from another database"), None)
    hold = sqlite3.connect(other / "spanner.db")
    hold.execute("PRAGMA wal_autocheckpoint=0")
    journal.add_entry("console:old", Entry(kind="note", note="only in the log"), None)
    shutil.copy2(other / "spanner.db-wal", target / "spanner.db-wal")
    hold.close()
    journal.close()
    assert (target / "spanner.db-wal").stat().st_size > 0
    _one_line(run_cli(["restore", str(backup), "--data-dir", str(target)]), "spanner.db-wal", "left over")
    assert sorted(p.name for p in target.iterdir()) == ["keys", "spanner.db-wal"]
    cfg = write_config(tmp_path / "c.toml", target, model_path, STORAGE_ONLY)
    _one_line(run_cli(["chat", "--user", "kit", "--config", str(cfg)], stdin=b"/journal\n"), "spanner.db-wal")
    (target / "spanner.db-wal").rename(tmp_path / "moved-away.wal")
    ok = run_cli(["restore", str(backup), "--data-dir", str(target)])
    assert ok.returncode == 0, ok.stderr.decode()
    journal = SqlJournal.open(target)
    assert [e.note for e in journal.list_entries("console:kit", 10)] == ["kept through every fault"]
    journal.close()


def test_backing_up_a_data_directory_without_a_database_says_so_and_creates_nothing(tmp_path, model_path):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    cfg = write_config(tmp_path / "c.toml", empty, model_path, STORAGE_ONLY)
    _one_line(run_cli(["backup", str(tmp_path / "backups"), "--config", str(cfg)]), "nothing to back up")
    assert list(empty.iterdir()) == [] and not list((tmp_path / "backups").glob("*.db"))


class BrokenSearch(SqlJournal):
    """A journal whose search fails with a message quoting what the person wrote."""

    secret = f"QUOKKA-{uuid.uuid4().hex[:8]}"

    def search_candidates(self, user):
        raise ValueError(f"could not search for {self.secret}")


def test_an_unexpected_error_is_logged_with_type_and_frames_never_its_message(make_app, data_dir):
    app = make_app(journal=BrokenSearch.open(data_dir))
    chat = Chat(app, "lou")
    reply = chat.say(f"/search {BrokenSearch.secret}")
    assert "went wrong" in reply[0]
    log = (data_dir / "logs" / "spanner.log").read_text()
    assert "ValueError" in log and "in search_candidates" in log and "journal_commands.py" in log
    assert 'File "' in log and ", line " in log
    assert BrokenSearch.secret not in log
    chat.close()
