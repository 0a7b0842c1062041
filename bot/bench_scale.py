"""`spanner bench --scale`: Telegram throughput with one and two worker processes, and the first visible reply.

Real processes against the Bot API emulator: one `spanner telegram
--ingress-only` and N `--worker`s on one database (a fresh SQLite data
directory, or on the PostgreSQL server `--scale-url` names: there each run gets
a database of its own, created and dropped by the benchmark, so the user in the
URL needs CREATEDB). The messages are quick notes, answered without a model, so what is
measured is the path every message takes: intake, inbox, claim, handling,
outbox, sending. Numbers are printed, never asserted.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .bench import _emulator, line, pct
from .config import Config

CHATS, EACH = 10, 20  # 200 messages, interleaved across ten chats


def _fleet(tmp: Path, emulator, url: str | None):
    from tg_helpers import Fleet  # beside the emulator, in tests/ (bench._emulator put it on the path)

    extra = f'[storage]\nurl = "{url}"\n' if url else ""
    return Fleet(tmp, tmp / "data", emulator, extra=extra)


def _members(fleet, ids: list[int]) -> None:
    from storage.people import People

    from .compose import build_app
    from .config import load_config

    app = build_app(load_config(fleet.config))
    try:
        people = People(app.journal)
        for uid in ids:
            people.redeem(people.create_invite("spanner"), f"telegram:{uid}", f"U{uid}")
    finally:
        app.close()


def _started(fleet, emulator, workers: int) -> None:
    """One ingress and `workers` workers; with 0 workers, the plain one-process bot (for comparison)."""
    fleet.start("--ingress-only") if workers else fleet.start()
    for _ in range(workers):
        fleet.start("--worker")
    emulator.wait_for(lambda: emulator.commands, 60, "the processes to start")  # each sets the menu
    time.sleep(3.0)  # every worker is polling now


@contextmanager
def _database(url: str | None):
    """A fresh PostgreSQL database on the server `url` names (dropped afterwards); None stays SQLite."""
    if not url:
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"spanner_scale_{os.getpid()}_{time.monotonic_ns()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _running(workers: int, url: str | None, ids: list[int]):
    """The emulator and the processes, with these people as members; everything stopped afterwards."""
    Emulator, _ = _emulator()
    emulator = Emulator().start()
    with tempfile.TemporaryDirectory() as tmp, _database(url) as fresh:
        fleet = _fleet(Path(tmp), emulator, fresh)
        try:
            _members(fleet, ids)
            _started(fleet, emulator, workers)
            yield emulator
        finally:
            fleet.stop()
            emulator.stop()


def messages_per_second(workers: int, url: str | None) -> float:
    ids = [8000 + i for i in range(CHATS)]
    with _running(workers, url, ids) as emulator:
        t0 = time.monotonic()
        for n in range(EACH):
            for uid in ids:
                emulator.send_text(uid, f"Quick note {n}.")
        emulator.wait_for(lambda: sum(len(emulator.chat(u)) for u in ids) >= CHATS * EACH, 300, "every reply")
        return CHATS * EACH / (time.monotonic() - t0)


def first_visible(workers: int, url: str | None, users: int = 20, rounds: int = 5) -> tuple[list[float], list[float]]:
    """Seconds from a message to the first thing its sender sees (typing, or the reply), and to the reply."""
    ids = [9000 + i for i in range(users)]
    firsts, replies = [], []
    with _running(workers, url, ids) as emulator:
        for round_ in range(rounds):
            sent = {}
            for uid in ids:  # everyone writes at once
                sent[uid] = time.monotonic()
                emulator.send_text(uid, "/help" if round_ % 2 else f"Quick note {round_}.")
            emulator.wait_for(lambda: all(any(m.at >= sent[u] for m in emulator.chat(u)) for u in ids), 120,
                              "every reply")
            for uid in ids:
                reply = min(m.at for m in emulator.chat(uid) if m.at >= sent[uid]) - sent[uid]
                typing = [t - sent[uid] for c, t in emulator.chat_actions if c == uid and t >= sent[uid]]
                firsts.append(min([reply] + typing))
                replies.append(reply)
            time.sleep(1.0)
    return firsts, replies


def run_scale_bench(base: Config, url: str | None = None) -> int:
    where = "PostgreSQL" if url else "SQLite"
    print(f"Spanner scale benchmark: {where}, {os.cpu_count()} cores, quick notes (no model)", flush=True)
    def layout(workers: int) -> str:
        return f"1 ingress + {workers} worker{'s' if workers > 1 else ''}" if workers else "one process"
    for workers in (0, 1, 2):
        rate = messages_per_second(workers, url)
        line(f"telegram: messages/s, {layout(workers)}, {CHATS} chats x {EACH}", f"{rate:.1f} msg/s")
    for workers in (0, 1, 2):
        firsts, replies = first_visible(workers, url)
        line(f"telegram: first visible reply p95, 20 users at once, {layout(workers)}",
             f"{pct(firsts, 95) * 1000:.0f} ms (the reply itself: {pct(replies, 95) * 1000:.0f} ms)")
    return 0
