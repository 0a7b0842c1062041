"""Storage keeps journals encrypted and whole: migrations, plaintext scans, key files, row binding."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bot.engine.records import Answer, Entry
from conftest import Chat, every_file_bytes
from storage.crypto import DecryptionError, KeyFileError
from alembic import command
from alembic.script import ScriptDirectory

from storage.db import alembic_config, make_engine, upgrade
from storage.journal import SqlJournal
from storage.models import Base

MARKER = "ZEBRA-PLAINTEXT-MARKER-7731"

pytestmark = pytest.mark.both_databases


def test_migrations_from_blank_build_exactly_the_models_schema(blank_database):
    engine = make_engine(blank_database)
    upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        version = conn.execute(text("select version_num from alembic_version")).scalar()
    assert diffs == []
    assert version == ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    upgrade(engine)  # running again at start-up is harmless
    engine.dispose()


_MIGRATE_AFTER_SIGNAL = """
import sys, time
from pathlib import Path
from sqlalchemy.engine import Connection
from storage.db import make_engine, upgrade

# A busy machine can pause a process just after any commit; make every pause happen, so
# another process always gets its turn between two of this one's commits.
_commit = Connection._commit_impl
def _commit_then_pause(self):
    _commit(self)
    time.sleep(0.05)
Connection._commit_impl = _commit_then_pause

go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
upgrade(make_engine(sys.argv[1]))
"""


def test_processes_starting_together_on_a_fresh_data_directory_all_migrate_it_cleanly(tmp_path, blank_database):
    # Several `spanner` processes started at once on a new install all bring the schema up;
    # none may replay a step another has just applied (that crashed one of them at start).
    # (SQLite: BEGIN IMMEDIATE; PostgreSQL: the advisory lock taken first in the migration's transaction.)
    db, go = blank_database, tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _MIGRATE_AFTER_SIGNAL, str(db), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(8)]
    time.sleep(1.0)  # let every interpreter import and wait at the line
    go.touch()
    outputs = [proc.communicate(timeout=120)[0].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, outputs
    engine = make_engine(db)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_upgrading_from_the_first_schema_keeps_every_entry_readable(tmp_path, blank_database):
    from storage.crypto import AESGCM, KeyRing, write_private
    # The first schema's code wrapped each user's data key with the master key itself.
    engine = make_engine(blank_database)
    upgrade(engine)
    master = AESGCM.generate_key(bit_length=256)
    write_private(tmp_path / "keys" / "master.key", master)
    legacy = SqlJournal(engine, KeyRing(master))
    legacy.add_entry("console:old", Entry(kind="note", note="kept across upgrades"), [0.5] * 384)
    legacy.add_entry("console:old", Entry(kind="reflection", summary="s", answers=[
        Answer("meeting", "What was it?", "A board.")]), None)
    legacy.close()
    engine = make_engine(blank_database)
    command.downgrade(alembic_config(engine), "0001")  # the data now sits in the oldest schema
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar() == "0001"
    engine.dispose()
    again = SqlJournal.open(tmp_path, url=blank_database)  # opening migrates the schema and the keys to head
    assert again.get_entry("console:old", 1).note == "kept across upgrades"
    assert again.get_entry("console:old", 2).answers[0].answer == "A board."
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("select scheme from user_keys").scalars().all() == [2]
    again.close()
    reopened = SqlJournal.open(tmp_path, url=blank_database)
    assert reopened.get_entry("console:old", 1).note == "kept across upgrades"
    reopened.close()


def test_sqlite_runs_with_wal_foreign_keys_and_full_sync(tmp_path):
    journal = SqlJournal.open(tmp_path)
    with journal.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    journal.close()


@pytest.mark.sqlite_only
def test_journal_text_never_reaches_disk_in_plaintext(app, caplog):
    caplog.set_level(logging.DEBUG)
    c = Chat(app, "pat")
    c.say(f"Quick note {MARKER} about the hospice.")
    c.say("/reflect")
    c.say(f"Board meeting where {MARKER} came up.")
    c.say(f"Each wanted {MARKER} sorted.")
    c.say(f"/search {MARKER}")
    # Make sure WAL content exists on disk too, then also checkpoint it into the main file.
    raw = sqlite3.connect(app.config.data_dir / "spanner.db")
    files_before_checkpoint = dict(every_file_bytes(app.config.data_dir))
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    files_after = dict(every_file_bytes(app.config.data_dir))
    assert any(p.name.endswith("-wal") for p in files_before_checkpoint)
    for path, content in list(files_before_checkpoint.items()) + list(files_after.items()):
        assert MARKER.encode() not in content, f"plaintext in {path}"
        assert MARKER.encode("utf-16-le") not in content, f"plaintext in {path}"
    assert MARKER not in caplog.text
    assert c.app.journal.get_entry(c.user, 1).note.startswith("Quick note " + MARKER)


@pytest.mark.postgres
def test_journal_text_never_reaches_the_postgresql_servers_files_in_plaintext(postgres_server, make_config,
                                                                               caplog):
    # The server's own files, read at the OS level: tables, indexes and the write-ahead log, after a
    # CHECKPOINT has written every changed page out (so nothing is only in the server's memory).
    from bot.compose import build_app
    from conftest import FixedClock
    caplog.set_level(logging.DEBUG)
    marker = f"QUOKKA-PG-{os.getpid()}-5521"
    app = build_app(make_config(**{"storage.url": postgres_server.fresh_database()}), clock=FixedClock())
    try:
        c = Chat(app, "pat")
        c.say(f"Quick note {marker} about the hospice.")
        c.say("/reflect")
        c.say(f"Board meeting where {marker} came up.")
        c.say(f"/search {marker}")
        assert app.journal.get_entry(c.user, 1).note.startswith("Quick note " + marker)
    finally:
        app.close()
    postgres_server.admin("CHECKPOINT")
    scanned = 0
    for path, content in every_file_bytes(postgres_server.data):
        scanned += 1
        assert marker.encode() not in content, f"plaintext in {path}"
        assert marker.encode("utf-16-le") not in content, f"plaintext in {path}"
    assert scanned > 100  # the whole server: every database's files and pg_wal
    assert marker not in caplog.text


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(tmp_path, open_journal):
    journal = open_journal(tmp_path)
    journal.add_entry("console:a", Entry(kind="note", note="first"), None)
    journal.add_entry("console:a", Entry(kind="note", note="second"), None)
    with journal.engine.begin() as conn:
        ct = conn.execute(text("select note_ct from entries where number = 1")).scalar()
        conn.execute(text("update entries set note_ct = :ct where number = 2"), {"ct": ct})
    with pytest.raises(DecryptionError):
        journal.get_entry("console:a", 2)
    assert journal.get_entry("console:a", 1).note == "first"
    journal.close()


def test_one_users_ciphertext_is_useless_under_another_users_row(tmp_path, open_journal):
    journal = open_journal(tmp_path)
    journal.add_entry("console:a", Entry(kind="note", note="from a"), None)
    journal.add_entry("console:b", Entry(kind="note", note="from b"), None)
    with journal.engine.begin() as conn:
        a_ct, a_uid = conn.exec_driver_sql(
            "select note_ct, uid from entries e join users u on u.id = e.user_id where u.handle='console:a'").one()
        conn.execute(text(
            "update entries set note_ct = :ct, uid = :uid where user_id = (select id from users where handle='console:b')"),
            {"ct": a_ct, "uid": a_uid[:-1] + "x"})
    with pytest.raises(DecryptionError):
        journal.get_entry("console:b", 1)
    journal.close()


def test_master_key_file_is_created_0600_and_kept_out_of_the_database(tmp_path):
    journal = SqlJournal.open(tmp_path)
    key_file = tmp_path / "keys" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    journal.close()
    for path, content in every_file_bytes(tmp_path):
        if path != key_file:
            assert key not in content


def test_world_readable_key_file_is_refused(tmp_path, open_journal):
    open_journal(tmp_path).close()
    key_file = tmp_path / "keys" / "master.key"
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        open_journal(tmp_path)


def test_wrong_master_key_stops_start_up_with_a_clear_message(tmp_path, open_journal):
    open_journal(tmp_path).close()
    key_file = tmp_path / "keys" / "master.key"
    key_file.write_bytes(os.urandom(32))
    with pytest.raises(KeyFileError, match="does not match this database"):
        open_journal(tmp_path)


def test_each_steps_answer_is_stored_as_its_own_row(tmp_path, open_journal):
    journal = open_journal(tmp_path)
    entry = Entry(kind="reflection", protocol="after_meeting", summary="s", answers=[
        Answer("meeting", "What was it?", "A board."), Answer("wants", "What did they want?", "", skipped=True),
        Answer("power", "Where was power?", "With finance.", "Why finance?", "Budgets.")])
    journal.add_entry("console:a", entry, [0.1] * 384)
    with journal.engine.connect() as conn:
        rows = conn.exec_driver_sql("select step_id, skipped from entry_answers order by position").all()
    assert [(step, bool(skipped)) for step, skipped in rows] == [("meeting", False), ("wants", True), ("power", False)]
    back = journal.get_entry("console:a", 1)
    assert [a.answer for a in back.answers] == ["A board.", "", "With finance."]
    assert back.answers[2].followup_answer == "Budgets."
    journal.close()


@pytest.mark.sqlite_only
def test_editing_a_note_leaves_no_copy_of_the_old_text_in_the_database_or_its_log(chat):
    from conftest import decrypt_everything
    old = "The OCELOT-3391 option we dropped."
    chat.say(old)
    db = chat.app.config.data_dir / "spanner.db"
    with chat.app.journal.engine.connect() as conn:
        old_blobs = list(conn.exec_driver_sql("select note_ct, title_ct from entries").one())
    chat.say("/edit 1")
    assert "OCELOT-3391" in chat.say("1")[0]  # the current text is shown before it is replaced
    chat.say("The option we kept.")
    assert chat.app.journal.get_entry(chat.user, 1).note == "The option we kept."
    assert not [(t, f) for t, f, pt in decrypt_everything(db, chat.app.journal.keys) if b"OCELOT-3391" in pt]
    for path, content in every_file_bytes(chat.app.config.data_dir):
        assert not any(blob in content for blob in old_blobs), f"the old ciphertext is still in {path}"
