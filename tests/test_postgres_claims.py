"""Several processes claiming slots and inbox updates on one PostgreSQL at the same moment: none twice.

On PostgreSQL transactions run side by side, so the claims rest on the
database: the ledger's ON CONFLICT DO NOTHING for a new slot, and
SELECT ... FOR UPDATE SKIP LOCKED for a deferred check-in and for an inbox
update. Six real processes (one data directory, so one keys folder) all try
every slot, every deferred check-in and every update, released together;
afterwards each went out exactly once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from conftest import ROOT
from storage.journal import SqlJournal
from storage.mentoring import MentoringStore
from storage.people import People
from storage.transport import TransportStore

PROCESSES = 6
PEOPLE = [f"telegram:{n}" for n in range(1, 6)]
SLOTS = [datetime(2026, 11, 23, 9, tzinfo=timezone.utc) + timedelta(days=d) for d in range(20)]
UPDATES = range(1000, 1200)

_CLAIMER = """
import random, sys, time
from datetime import datetime
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from storage.journal import SqlJournal
from storage.mentoring import MentoringStore
from storage.transport import TransportStore

data_dir, url, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
journal = SqlJournal.open(Path(data_dir), url=url)
mentoring, transport = MentoringStore(journal), TransportStore(journal)
people, slots = sys.argv[5].split(","), [datetime.fromisoformat(s) for s in sys.argv[6].split(",")]
deferred = [int(d) for d in sys.argv[7].split(",")]
updates = [int(u) for u in sys.argv[8].split(",")]
# The deferred check-ins first and in the same order everywhere, so processes meet on the same row;
# then slots and updates, each process in its own order.
work = [("slot", p, s) for p in people for s in slots] + [("update", u, None) for u in updates]
random.shuffle(work)
work = [("deferred", d, None) for d in deferred] + work
while not go.exists():
    time.sleep(0.002)
for kind, what, slot in work:
    if kind == "slot":
        if mentoring.claim(what, "checkin", slot, "delivered", 1, slot, {"text": "check-in"}):
            print("slot", what, slot.isoformat(), flush=True)
    elif kind == "deferred":
        if mentoring.mark_delivered(what, {"text": "snoozed check-in"}):
            print("deferred", what, flush=True)
    else:
        transport.finish_update(what, [(42, {"text": f"reply to {what}"})])
journal.close()
"""


@pytest.mark.postgres
def test_processes_claiming_slots_and_updates_at_once_on_postgresql_never_claim_one_twice(postgres_server,
                                                                                          tmp_path):
    url = postgres_server.fresh_database()
    data_dir = tmp_path / "data"
    journal = SqlJournal.open(data_dir, url=url)
    people, mentoring, transport = People(journal), MentoringStore(journal), TransportStore(journal)
    for handle in PEOPLE:
        people.redeem(people.create_invite("mentee"), handle, handle.split(":")[1])
    # Deferred check-ins (a snooze, quiet hours) waiting to go out: an earlier slot each.
    for handle in PEOPLE:
        for d in range(1, 9):
            slot = SLOTS[0] - timedelta(days=d)
            assert mentoring.claim(handle, "checkin", slot, "snoozed", 1, slot)
    with journal.engine.connect() as conn:
        deferred = [r[0] for r in conn.execute(text("select id from deliveries where state = 'snoozed'"))]
    transport.store_updates([(u, PEOPLE[u % len(PEOPLE)], {"message": {"text": f"update {u}"}}) for u in UPDATES])
    go = tmp_path / "go"
    args = [str(data_dir), url, str(go), str(ROOT), ",".join(PEOPLE), ",".join(s.isoformat() for s in SLOTS),
            ",".join(map(str, deferred)), ",".join(map(str, UPDATES))]
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(PROCESSES)]
    time.sleep(2.0)  # every process imported and waiting at the line
    go.touch()
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * PROCESSES, [err.decode()[-2000:] for _, err in outputs]
    wins = Counter(line for out, _ in outputs for line in out.decode().splitlines())
    winners = Counter(i for i, (out, _) in enumerate(outputs) for _ in out.decode().splitlines())

    assert len([w for w in wins if w.startswith("slot ")]) == len(PEOPLE) * len(SLOTS)
    assert len([w for w in wins if w.startswith("deferred ")]) == len(deferred)
    assert set(wins.values()) == {1}, [w for w, n in wins.items() if n > 1]  # nobody won anything twice
    assert len(winners) > 1  # the work really was shared between processes
    with journal.engine.connect() as conn:
        states = dict(conn.execute(text("select state, count(*) from deliveries group by state")).all())
        notices = conn.execute(text("select count(*) from notifications")).scalar()
        handled = conn.execute(text("select count(*) from inbox where handled_at is not null")).scalar()
        replies = conn.execute(text("select count(*) from outbox")).scalar()
    assert states == {"delivered": len(PEOPLE) * len(SLOTS) + len(deferred)}
    assert notices == len(PEOPLE) * len(SLOTS) + len(deferred)  # one message per slot, none doubled
    assert handled == len(UPDATES)
    assert replies == len(UPDATES)  # one reply per update: no update was handled twice
    texts = Counter(p.payload["text"] for p in transport.pending_outbox())
    assert texts == Counter(f"reply to {u}" for u in UPDATES)
    journal.close()


_STATE_WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from storage.journal import SqlJournal

journal = SqlJournal.open(Path(sys.argv[1]), url=sys.argv[2])
while not Path(sys.argv[3]).exists():
    time.sleep(0.002)
for n in range(int(sys.argv[5])):
    journal.save_state(f"console:p{n}", {"by": sys.argv[6]})  # a traceback here fails the test
    journal.reserve_number(f"console:p{n}")
journal.close()
"""


@pytest.mark.postgres
def test_one_persons_writes_from_several_processes_take_turns_on_postgresql(postgres_server, tmp_path):
    # Everyone's first conversation state, written by four processes at the same moment: on SQLite
    # writers take turns; on PostgreSQL the person's row lock must do it, or two inserts of the same
    # state row collide (a unique violation: "nothing from this message was saved").
    url, data_dir, go, people = postgres_server.fresh_database(), tmp_path / "data", tmp_path / "go", 150
    journal = SqlJournal.open(data_dir, url=url)
    for n in range(people):
        journal.ensure_user(f"console:p{n}")
    procs = [subprocess.Popen([sys.executable, "-c", _STATE_WRITER, str(data_dir), url, str(go), str(ROOT),
                               str(people), str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(4)]
    time.sleep(2.0)
    go.touch()
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err.decode()[-1500:] for _, err in outputs]
    assert all(journal.load_state(f"console:p{n}")["by"] in "0123" for n in range(people))
    assert {journal.next_number(f"console:p{n}") for n in range(people)} == {5}  # four numbers each, none shared
    journal.close()
