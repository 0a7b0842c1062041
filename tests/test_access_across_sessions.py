"""Across front ends and sessions: revocation takes effect at once, and entry numbers stay right (promise 5).

The supervisor and the spanner here use the real console command, in their
own processes, while the admin command runs beside them.
"""

from __future__ import annotations

import re
import threading

import pytest

from bot.engine.records import Entry
from conftest import STORAGE_ONLY, LiveChat, run_cli, write_config
from storage.people import People
from storage.sharing import SharingStore

NOTES = 12  # per session, both writing at once

pytestmark = pytest.mark.both_databases


def _person(journal, handle: str, role: str) -> None:
    people = People(journal)
    people.redeem(people.create_invite(role), handle, handle.split(":")[1].title())


def test_a_revoked_supervisor_loses_review_at_once_on_the_console(tmp_path, data_dir, model_path, storage_url,
                                                                   open_journal):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path, STORAGE_ONLY, storage_url)
    journal = open_journal(data_dir)
    _person(journal, "console:ana", "spanner")
    _person(journal, "console:sue", "supervisor")
    sharing = SharingStore(journal)
    sharing.supervise("console:sue", "console:ana")
    journal.add_entry("console:ana", Entry(kind="note", note="Shared with Sue on purpose."), None)
    sharing.share("console:ana", 1, "console:sue", "full", False, "Shared with Sue on purpose.")
    journal.close()
    sue = LiveChat(cfg, user="sue")  # a session already open when access is removed
    sue.wait_for("Hello sue")
    sue.send("/review")
    sue.wait_for("Ana")
    revoked = run_cli(["admin", "revoke", "console:sue", "--config", str(cfg)])
    assert revoked.returncode == 0, revoked.stderr.decode()
    start = len(sue.seen)
    sue.send("/review")
    sue.wait_for("access to this Spanner has been removed")
    sue.send("1")  # pressing the old button to open the share
    sue.send("/journal")
    later = sue.close()[start:]
    assert "Shared with Sue on purpose" not in later and later.count("has been removed") == 3, later
    fresh = run_cli(["chat", "--user", "sue", "--config", str(cfg)], stdin=b"/review\n")
    assert b"has been removed" in fresh.stdout and b"Shared with Sue" not in fresh.stdout
    journal = open_journal(data_dir)
    assert SharingStore(journal).visible("console:sue") == []
    assert [e.number for e in journal.list_entries("console:sue", 10)] == []  # nothing was kept for her
    journal.close()


def test_the_same_person_in_two_console_sessions_is_told_the_right_entry_numbers(tmp_path, data_dir, model_path,
                                                                                 storage_url, open_journal):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path, STORAGE_ONLY, storage_url)
    sessions = [LiveChat(cfg, user="dee") for _ in range(2)]
    for s in sessions:
        s.wait_for("Hello dee")
    told: dict[int, str] = {}

    def write(session: LiveChat, name: str) -> None:
        for i in range(NOTES):
            start = len(session.seen)
            text = f"Note {i} from session {name}."
            session.send(text)
            out = session.wait_for(f"quick note #", timeout=60)[start:]
            while not re.search(r"quick note #(\d+)\.", out):
                out = session.wait_for(".", timeout=60)[start:]
            told[int(re.search(r"quick note #(\d+)\.", out).group(1))] = text

    threads = [threading.Thread(target=write, args=(s, n)) for s, n in zip(sessions, "AB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in sessions:
        s.close()
    assert len(told) == 2 * NOTES, f"two notes were told the same number: {sorted(told)}"
    journal = open_journal(data_dir)
    wrong = {n: t for n, t in told.items() if journal.get_entry("console:dee", n).note != t}
    journal.close()
    assert not wrong, f"told a number that is another note's: {wrong}"
