"""Many Spanner processes on one data directory for a minute, writers killed with -9 at random (promise 21).

Two chat writers keep saving notes (new people, so new keys, as well as
returning ones) and are killed with `kill -9` at random moments, including
during start-up; an admin creates invites and forgets a person; another
process rotates the master key; another takes backups. All of them are the
real `spanner` command. Afterwards every note that was confirmed ("Saved as
quick note #N") must be readable with exactly its text, also in every backup
taken after it was confirmed; the forgotten person stays forgotten, also when
a backup from before the forget is restored; and both databases pass SQLite's
integrity check. The counts are printed with the test's result.
"""

from __future__ import annotations

import random
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter

from bot.engine.records import Entry
from conftest import SPANNER, STORAGE_ONLY, LiveChat, write_config
from storage import lifecycle
from storage.crypto import KeyFileError
from storage.journal import SqlJournal

SECONDS = 60
SAVED = re.compile(rb"Saved as quick note #(\d+)")


class Run:
    """What the processes did, shared by the driving threads."""

    def __init__(self, cfg, end: float):
        self.cfg = cfg
        self.end = end
        self.lock = threading.Lock()
        self.confirmed: dict[tuple[str, int], tuple[str, float]] = {}  # (user, number) -> (text, when)
        self.counts: Counter = Counter()
        self.backups: list[tuple[float, str]] = []  # (started, path)
        self.forgot_at: float | None = None
        self.errors: list[str] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([SPANNER, *args, "--config", str(self.cfg)], capture_output=True, timeout=120)
        if result.returncode != 0:
            self.errors.append(f"{args[0]} {args[1] if len(args) > 1 else ''}: {result.stderr.decode()[-300:]}")
        return result


def _unreadable(journal, user: str) -> bool:
    """Forgotten: no entry of theirs can be read (gone, or its key destroyed)."""
    try:
        return all(journal.get_entry(user, n) is None for n in range(1, 6))
    except KeyFileError:
        return True


def _writer(run: Run, name: str, seed: int) -> None:
    rng = random.Random(seed)
    people: list[str] = []
    while time.monotonic() < run.end - 1:
        if not people or rng.random() < 0.6:
            people.append(f"{name}{len(people)}")  # a new person: a new key, made while others run
        user = rng.choice(people[-3:])
        live = LiveChat(run.cfg, user=user)
        with run.lock:
            run.counts["writer processes started"] += 1
        if rng.random() < 0.25:  # now and then, during start-up: while keys are opened or created
            kill_at = time.monotonic() + rng.uniform(0.2, 1.5)
        else:
            try:
                live.wait_for(f"Hello {user}", timeout=60)
            except AssertionError:
                run.errors.append(f"writer {user} never started: {live.seen.decode()[-300:]}")
                live.kill9()
                return
            kill_at = time.monotonic() + rng.uniform(0.2, 5.0)
        kill_at = min(kill_at, run.end)
        seen = 0
        try:
            n = 0
            while time.monotonic() < kill_at:
                n += 1
                text = f"{user} note {n} {rng.getrandbits(40):x}"
                live.send(text)
                while time.monotonic() < kill_at:
                    chunk = live.proc.stdout.read()
                    if chunk:
                        live.seen += chunk
                    found = list(SAVED.finditer(live.seen, seen))
                    if found:
                        seen = found[-1].end()
                        with run.lock:
                            run.confirmed[(f"console:{user}", int(found[-1].group(1)))] = (text, time.monotonic())
                        break
                    if live.proc.poll() is not None:
                        run.errors.append(f"writer {user} exited: {live.seen.decode()[-300:]}")
                        return
                    time.sleep(0.01)
        finally:
            live.kill9()
            with run.lock:
                run.counts["kill -9 of a writer"] += 1


def _admin(run: Run, victim: str) -> None:
    while time.monotonic() < run.end:
        if run.cli("admin", "invite", "--role", "spanner").returncode == 0:
            run.counts["invites created"] += 1
        if run.forgot_at is None and time.monotonic() > run.end - SECONDS * 0.6:
            if run.cli("admin", "forget", victim, "--yes").returncode == 0:
                run.forgot_at = time.monotonic()
                run.counts["people forgotten"] += 1
        time.sleep(0.5)


def _rotator(run: Run) -> None:
    while time.monotonic() < run.end:
        time.sleep(6)
        if run.cli("admin", "rotate-key").returncode == 0:
            run.counts["master key rotations"] += 1


def _backups(run: Run, folder) -> None:
    while time.monotonic() < run.end:
        time.sleep(5)
        started = time.monotonic()
        result = run.cli("backup", str(folder))
        if result.returncode == 0:
            path = result.stdout.decode().split("backup written: ", 1)[1].split(" (", 1)[0]
            run.backups.append((started, path))
            run.counts["backups taken"] += 1


def test_four_kinds_of_process_for_a_minute_with_kill_9_lose_and_resurrect_nothing(tmp_path, model_path, capsys):
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "c.toml", data, model_path,  # no model, no index: more rounds a minute
                       STORAGE_ONLY + '\n[telegram]\nbot_username = "spanner_bot"\n')
    victim = "console:victim"
    journal = SqlJournal.open(data)
    for i in range(5):
        journal.add_entry(victim, Entry(kind="note", note=f"the victim's words {i}"), None)
    journal.close()
    run = Run(cfg, time.monotonic() + SECONDS)
    backups = tmp_path / "backups"
    threads = [threading.Thread(target=_writer, args=(run, "wa", 1)),
               threading.Thread(target=_writer, args=(run, "wb", 2)),
               threading.Thread(target=_admin, args=(run, victim)),
               threading.Thread(target=_rotator, args=(run,)),
               threading.Thread(target=_backups, args=(run, backups))]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    wall = time.monotonic() - started
    assert not run.errors, run.errors[:5]
    assert run.forgot_at is not None and run.counts["master key rotations"] >= 3
    assert any(at < run.forgot_at for at, _ in run.backups) and any(at > run.forgot_at for at, _ in run.backups)

    # Every confirmed note is there, word for word; the victim is gone; both databases are sound.
    journal = SqlJournal.open(data)
    wrong = {k: v[0] for k, v in run.confirmed.items()
             if (e := journal.get_entry(k[0], k[1])) is None or e.note != v[0]}
    assert not wrong, f"{len(wrong)} confirmed notes lost or changed: {list(wrong.items())[:3]}"
    assert _unreadable(journal, victim)
    people = len(journal.keys.keystore)
    journal.close()
    for db in (data / "spanner.db", data / "keys" / "keys.db"):
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], db
        conn.close()

    # Every backup: the notes confirmed before it started are in it; the victim never comes back.
    in_backups = 0
    for i, (taken, path) in enumerate(run.backups):
        target = tmp_path / f"restored-{i}"
        shutil.copytree(data / "keys", target / "keys")
        lifecycle.restore(path, target)
        restored = SqlJournal.open(target)
        for (user, number), (text, when) in run.confirmed.items():
            if when < taken:
                entry = restored.get_entry(user, number)
                assert entry is not None and entry.note == text, (path, user, number)
                in_backups += 1
        assert _unreadable(restored, victim), f"the forgotten person came back from {path}"
        restored.close()

    counts = dict(run.counts, **{"confirmed notes, all readable": len(run.confirmed),
                                 "people with keys at the end": people,
                                 "confirmed notes checked in restored backups": in_backups})
    with capsys.disabled():  # in every run's output, not only with -s
        print(f"\nstress run: {wall:.0f} s wall, " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    assert len(run.confirmed) >= 40 and run.counts["kill -9 of a writer"] >= 10
