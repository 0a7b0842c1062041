"""Several `spanner telegram` processes on one database: one ingress, workers that claim chats, schedulers.

Real processes against the Bot API emulator: an `--ingress-only` process polls,
stores and sends; `--worker` processes claim chats and handle them. Quick
notes are the messages: they are answered without a model ("Saved as quick
note #N"), and N counts a person's notes in the order they were handled.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.claims import ChatClaims
from storage.models import ChatClaim
from storage.journal import SqlJournal
from storage.people import People
from storage.transport import TransportStore
from test_telegram import emulator  # noqa: F401  (the fixture)
from tg_helpers import Fleet

# Every test here runs on SQLite and, in the PostgreSQL job, on a real PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_databases

CHATS = list(range(701, 711))  # ten people, each in their own chat
EACH = 20  # messages per chat: 200 in all


@dataclass(frozen=True)
class Place:
    """Where the team's data is: the data directory (keys) and storage.url ("" for SQLite there)."""

    data_dir: Path
    url: str

    def journal(self) -> SqlJournal:
        return SqlJournal.open(self.data_dir, url=self.url)


@pytest.fixture
def members(tmp_path, storage_url) -> Place:
    place = Place(tmp_path / "data", storage_url)
    journal = place.journal()
    people = People(journal)
    for uid in CHATS:
        people.redeem(people.create_invite("spanner"), f"telegram:{uid}", f"P{uid}")
    journal.close()
    return place


def _send_interleaved(emulator) -> None:
    """Round robin over the chats: every chat's messages are interleaved with every other's."""
    for n in range(1, EACH + 1):
        for uid in CHATS:
            emulator.send_text(uid, f"Note {n} from {uid}.", name=f"P{uid}")


def _replies(emulator) -> int:
    return sum(len(emulator.chat(uid)) for uid in CHATS)


def _check_every_chat_in_order_once(emulator, place: Place, gaps: bool = False) -> None:
    """Each chat got one reply per message, in order, naming the entry that holds that message.

    With `gaps`, a number may be skipped: a worker killed between reserving an entry's number and
    committing the event leaves that number unused (storage/journal.py reserve_number), and the
    message is saved once, under the next number, by the worker that takes the chat over."""
    journal = place.journal()
    try:
        for uid in CHATS:  # handled in the order sent: the Nth entry holds message N
            entries = sorted(journal.list_entries(f"telegram:{uid}", 100), key=lambda e: e.number)
            assert [e.note for e in entries] == [f"Note {n} from {uid}." for n in range(1, EACH + 1)], f"chat {uid}"
            numbers = [e.number for e in entries]
            if not gaps:
                assert numbers == list(range(1, EACH + 1)), f"chat {uid}: {numbers}"
            got = [t.split(" (")[0] for t in emulator.texts(uid)]
            assert got == [f"Saved as quick note #{n}." for n in numbers], f"chat {uid}: {got}"
        assert not TransportStore(journal).pending_outbox()
    finally:
        journal.close()


def _held_by(place: Place, pid: int) -> list[int]:
    """The people whose chats the process `pid` holds now (on either database)."""
    journal = place.journal()
    try:
        with journal.sessions() as s:
            rows = s.execute(select(ChatClaim.user_id, ChatClaim.owner, ChatClaim.expires_at)).all()
    finally:
        journal.close()
    now = datetime.now(timezone.utc)
    return [user for user, owner, expires in rows if f" {pid} " in f" {owner} " and expires > now]


def test_two_workers_keep_each_of_ten_chats_in_order_with_none_lost_or_doubled(tmp_path, members, emulator):
    fleet = Fleet(tmp_path, members.data_dir, emulator, url=members.url, worker_chats=5)
    try:
        fleet.start("--ingress-only")
        workers = [fleet.start("--worker"), fleet.start("--worker")]
        time.sleep(2.0)
        _send_interleaved(emulator)
        emulator.wait_for(lambda: _replies(emulator) >= len(CHATS) * EACH, 60, "200 replies")
        time.sleep(1.0)  # anything doubled would arrive now
    finally:
        errors = fleet.stop()
    _check_every_chat_in_order_once(emulator, members)
    assert all(w.returncode == 0 for w in workers), "a worker failed"
    assert not any(emulator.token in e for e in errors)


def test_a_worker_killed_mid_run_hands_its_chats_to_the_other_with_none_lost_or_doubled(
        tmp_path, members, emulator):
    fleet = Fleet(tmp_path, members.data_dir, emulator, url=members.url, worker_chats=5)
    try:
        fleet.start("--ingress-only")
        doomed, survivor = fleet.start("--worker"), fleet.start("--worker")
        time.sleep(2.0)
        _send_interleaved(emulator)
        held = emulator.wait_for(lambda: _replies(emulator) >= 30 and _held_by(members, doomed.pid), 60,
                                 "the first worker to hold chats")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        answered_before = _replies(emulator)
        assert held and answered_before < len(CHATS) * EACH, "the kill came mid-run, while chats were held"
        emulator.wait_for(lambda: _replies(emulator) >= len(CHATS) * EACH, 60, "the other 200 replies")
        time.sleep(1.0)
        assert survivor.poll() is None
    finally:
        errors = fleet.stop()
    _check_every_chat_in_order_once(emulator, members, gaps=True)
    assert not any(emulator.token in e for e in errors)


def test_a_worker_killed_while_handling_an_update_leaves_it_to_the_next_worker_before_its_lease_ends(
        tmp_path, members, emulator):
    fleet = Fleet(tmp_path, members.data_dir, emulator, url=members.url, claim_lease_seconds=300.0)
    try:
        fleet.start("--ingress-only")
        doomed = fleet.start("--worker")
        emulator.hold_method("sendChatAction")  # handling starts with the typing indicator: freeze there
        emulator.send_text(CHATS[0], "Note written just before the worker died.")
        emulator.wait_for(lambda: emulator.method_calls("sendChatAction"), 60, "handling to begin")
        assert _held_by(members, doomed.pid)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        emulator.release_method("sendChatAction")
        started = time.monotonic()
        fleet.start("--worker")
        # Long before the 300 s lease ends: the claim of a process gone from this host is taken at once.
        emulator.wait_text(CHATS[0], "Saved as quick note #1", timeout=90)
        assert time.monotonic() - started < 120
        time.sleep(1.5)
    finally:
        fleet.stop()
    assert emulator.texts(CHATS[0]) == ["Saved as quick note #1. (/reflect starts a guided reflection.)"]
    journal = members.journal()
    try:
        assert [e.note for e in journal.list_entries(f"telegram:{CHATS[0]}", 10)] == \
            ["Note written just before the worker died."]
    finally:
        journal.close()


def test_two_schedulers_in_two_processes_send_each_checkin_once(tmp_path, members, emulator):
    from bot.compose import build_app
    from bot.config import load_config
    from bot.engine.inputs import parse_days

    mentor, mentees = CHATS[0], CHATS[1:4]
    fleet = Fleet(tmp_path, members.data_dir, emulator, url=members.url)
    # The schedulers run in the two workers, not in the ingress: the check-ins still go out, through it.
    fleet.start("--ingress-only", "--no-scheduler")
    fleet.start("--worker", "--scheduler")
    fleet.start("--worker", "--scheduler")
    app = build_app(load_config(overrides={"paths.data_dir": str(members.data_dir), "storage.url": members.url,
                                           "llm.enabled": False,
                                           "retrieval.enabled": False, "voice.enabled": False}))
    try:
        time.sleep(3.0)  # both schedulers are ticking now (every 5 s): the check-ins fall due under both
        People(app.journal).set_role(f"telegram:{mentor}", "mentor")
        now = datetime.now(timezone.utc)
        due = (now - timedelta(minutes=5)).strftime("%H:%M")  # a slot five minutes ago: due at once
        for uid in mentees:
            app.mentoring.pair(f"telegram:{mentor}", f"telegram:{uid}", "new_spanner", now)
            app.mentoring.set_schedule(f"telegram:{uid}", "checkin", parse_days("daily"), due, "UTC",
                                       now - timedelta(minutes=10))
        for uid in mentees:
            emulator.wait_text(uid, "Week 1", timeout=60)
        time.sleep(11)  # each scheduler ticks at least twice more
    finally:
        app.close()
        fleet.stop()
    for uid in mentees:
        assert sum("Week 1" in t for t in emulator.texts(uid)) == 1, emulator.texts(uid)


def test_a_chat_claimed_by_a_live_worker_waits_for_its_lease_and_a_dead_ones_is_taken_at_once(tmp_path, members):
    import socket
    journal = members.journal()
    try:
        TransportStore(journal).store_updates([(1, "telegram:701", {}), (2, "telegram:702", {})])
        clock = [datetime.now(timezone.utc)]
        elsewhere = ChatClaims(journal, lease_seconds=30, owner="another-host 4242 aa", clock=lambda: clock[0])
        dead_here = ChatClaims(journal, lease_seconds=30, owner=f"{socket.gethostname()} 999999999 bb",
                               clock=lambda: clock[0])
        me = ChatClaims(journal, lease_seconds=30, clock=lambda: clock[0])
        assert elsewhere.claim(1) == ["telegram:701"]  # oldest waiting first
        assert dead_here.claim(1) == ["telegram:702"]
        # A process on this host that no longer runs holds nothing; another host's worker, its lease.
        assert me.claim(5) == ["telegram:702"]
        clock[0] += timedelta(seconds=20)
        assert elsewhere.renew() == 1 and me.claim(5) == ["telegram:702"]
        clock[0] += timedelta(seconds=31)  # no renewal: the lease lapses
        assert not elsewhere.holds("telegram:701")
        assert sorted(me.claim(5)) == ["telegram:701", "telegram:702"]
        me.release("telegram:701")
        assert elsewhere.claim(5) == ["telegram:701"] and not me.holds("telegram:701")
    finally:
        journal.close()
