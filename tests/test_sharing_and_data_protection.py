"""Consent-based supervision and data protection: share by choice, encrypted at rest, export and erase for real."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3

import jsonschema
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bot.engine.records import Entry, Event
from conftest import ROOT, Chat, FixedClock, every_file_bytes
from storage import lifecycle
from storage.crypto import KeyFileError
from storage.journal import SqlJournal
from storage.people import People
from storage.sharing import SharingStore

MARKER = "OKAPI-CONFIDENTIAL-4471"

pytestmark = pytest.mark.both_databases


def person(journal, handle: str, role: str = "spanner", name: str = "") -> None:
    people = People(journal)
    people.redeem(people.create_invite(role), handle, name or handle.split(":")[1].title())


@pytest.fixture
def team(app):
    """A spanner (ana), a second spanner (ben), their supervisor (sue) and another supervisor (tom)."""
    for handle, role in (("console:ana", "spanner"), ("console:ben", "spanner"),
                         ("console:sue", "supervisor"), ("console:tom", "supervisor")):
        person(app.journal, handle, role)
    sharing = SharingStore(app.journal)
    sharing.supervise("console:sue", "console:ana")
    sharing.supervise("console:tom", "console:ben")
    return {name: Chat(app, name) for name in ("ana", "ben", "sue", "tom")}


def press(chat: Chat, data: str) -> list[str]:
    replies = chat.loop.run_until_complete(chat.app.engine.handle(Event(user=chat.user, choice=data)))
    chat.replies.extend(replies)
    return [r.text for r in replies]


def open_first_share(reader: Chat) -> int:
    """The reader lists what is shared with them and takes the first item's share id."""
    reader.say("/review")
    return int(reader.console._choices[0].data.split(":")[1])


def comment_on(reader: Chat, share_id: int, text: str) -> list[str]:
    """The reader opens the share, presses Comment and writes."""
    press(reader, f"rv:{share_id}")
    press(reader, reader.replies[-1].choices[0].data)  # its Comment button
    return reader.say(text)


def share_entry(chat: Chat, number: int, scope: str = "full", labels: str = "no") -> list[str]:
    chat.say(f"/share {number}")
    press(chat, f"share:scope:{scope}")
    preview = press(chat, f"share:labels:{labels}")
    press(chat, "share:confirm:yes")
    return preview


def test_nothing_is_shared_by_default_and_the_author_sees_exactly_what_goes(team):
    ana, sue = team["ana"], team["sue"]
    ana.say(f"Met Priya Shah from Northshire Council about {MARKER}.")
    assert sue.say("/review") == ["Nothing is shared with you at the moment."]
    ana.say("/share 1")
    press(ana, "share:scope:full")
    preview = press(ana, "share:labels:yes")[0]
    assert "Priya" not in preview and "Northshire" not in preview
    assert "Met Person A from Organisation A" in preview
    assert "Quick note" in preview  # our own words are left alone
    done = press(ana, "share:confirm:yes")[0]
    assert "Entry #1 is shared" in done
    share_id = open_first_share(sue)
    assert "Ana, #1" in sue.replies[-1].text
    shown = press(sue, f"rv:{share_id}")[0]
    assert preview.split("\n\n", 1)[1] in shown  # exactly what the author approved
    access = ana.say("/access")[0]
    assert "Sue (supervisor) read #1" in access


def test_unshare_is_immediate_and_a_stale_button_gets_a_refusal(team):
    ana, sue = team["ana"], team["sue"]
    ana.say("A note to share then take back.")
    share_entry(ana, 1)
    share_id = open_first_share(sue)
    assert "Entry #1 is no longer shared" in ana.say("/unshare 1")[0]
    assert press(sue, f"rv:{share_id}") == ["That entry isn't shared with you (or no longer is)."]
    assert sue.say("/review") == ["Nothing is shared with you at the moment."]


def test_a_supervisor_sees_nothing_else_ever(team):
    ana, ben, sue, tom = team["ana"], team["ben"], team["sue"], team["tom"]
    ana.say(f"Unshared note {MARKER}.")
    ana.say("/reflect")
    ana.say(f"A draft reflection about {MARKER}.")
    ben.say("Ben's note for Tom.")
    share_entry(ben, 1)
    bens_share = open_first_share(tom)
    # Sue is not Ben's reader: a forged button for Ben's share is refused and not logged as a read.
    assert press(sue, f"rv:{bens_share}") == ["That entry isn't shared with you (or no longer is)."]
    assert sue.say("/review") == ["Nothing is shared with you at the moment."]
    team_view = sue.say("/team")[0]
    assert "Ana: 0 shared with you" in team_view and "Ben" not in team_view
    assert "Sue" not in ben.say("/access")[0]
    for text in [r.text for r in sue.replies]:
        assert MARKER not in text
    # A spanner is not a supervisor.
    assert ben.say("/review") == ["That is for supervisors, to read what people chose to share with them."]


def test_comments_go_to_the_author_who_can_answer(team):
    ana, sue = team["ana"], team["sue"]
    ana.say("Reflection on the estates meeting.")
    share_entry(ana, 1)
    share_id = open_first_share(sue)
    assert comment_on(sue, share_id, "What would make the next meeting easier?") == ["Sent to Ana."]
    got = ana.say("/journal")
    assert got[0].startswith("Sue, your supervisor, commented on entry #1: What would make the next meeting easier?")
    assert ana.replies[-2].choices[0].label == "Answer"
    ana.say("Answer")
    assert ana.say("Meeting the estates lead beforehand.") == ["Sent to Sue."]
    assert sue.say("/help")[0].startswith("Ana answered on entry #1: Meeting the estates lead beforehand.")
    assert ana.app.journal.count_entries(ana.user) == 1  # the answer is in the thread, not a stray note
    shown = press(sue, f"rv:{share_id}")[0]
    assert "What would make the next meeting easier?" in shown and "Meeting the estates lead" in shown


class SharingMachine(RuleBasedStateMachine):
    """Random people, entries, links, shares and revocations; a reader's view must equal the model."""

    def __init__(self):
        super().__init__()
        import tempfile
        self.tmp = tempfile.TemporaryDirectory()
        self.journal = SqlJournal.open(self.tmp.name)
        self.sharing = SharingStore(self.journal)
        self.spanners = [f"console:s{i}" for i in range(3)]
        self.readers = [f"console:r{i}" for i in range(2)]
        for h in self.spanners:
            person(self.journal, h)
        for h in self.readers:
            person(self.journal, h, "supervisor")
        self.links: set[tuple[str, str]] = set()
        self.entries: dict[str, int] = {h: 0 for h in self.spanners}
        self.active: set[tuple[str, str, int]] = set()  # (reader, owner, number)

    def teardown(self):
        self.journal.close()
        self.tmp.cleanup()

    @rule(owner=st.integers(0, 2))
    def write(self, owner):
        h = self.spanners[owner]
        self.journal.add_entry(h, Entry(kind="note", note=f"{h} note"), None)
        self.entries[h] += 1

    @rule(reader=st.integers(0, 1), owner=st.integers(0, 2))
    def link(self, reader, owner):
        self.sharing.supervise(self.readers[reader], self.spanners[owner])
        self.links.add((self.readers[reader], self.spanners[owner]))

    @rule(reader=st.integers(0, 1), owner=st.integers(0, 2), number=st.integers(1, 4))
    def share(self, reader, owner, number):
        r, o = self.readers[reader], self.spanners[owner]
        allowed = (r, o) in self.links and number <= self.entries[o]
        try:
            self.sharing.share(o, number, r, "full", False, f"{o} #{number}")
            assert allowed
            self.active.add((r, o, number))
        except PermissionError:
            assert not allowed

    @rule(owner=st.integers(0, 2), number=st.integers(1, 4))
    def unshare(self, owner, number):
        o = self.spanners[owner]
        self.sharing.unshare(o, number)
        self.active = {a for a in self.active if not (a[1] == o and a[2] == number)}

    @invariant()
    def readers_see_exactly_the_active_shares(self):
        for r in self.readers:
            visible = self.sharing.visible(r)
            assert {(r, item.owner, item.number) for item in visible} == {a for a in self.active if a[0] == r}
            for item in visible:
                assert self.sharing.read(r, item.share_id).content == f"{item.owner} #{item.number}"
        for s_ in self.spanners:  # spanners are nobody's readers
            assert self.sharing.visible(s_) == []


TestSharingProperty = SharingMachine.TestCase
TestSharingProperty.settings = settings(max_examples=25, stateful_step_count=20, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])


class PromptEcho:
    """The worst case for leaks: a model that says back its whole prompt."""

    def __init__(self):
        self.prompts: list[str] = []

    @property
    def available(self):
        return True

    async def generate(self, user, task, variables, on_partial=None):
        from bot.engine.ports import Generation
        text = " ".join(variables.values())
        self.prompts.append(text)
        return Generation(f"What about {text}?", "ok")


def test_another_users_words_never_reach_the_model_a_reply_or_an_export(make_app, make_config, tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    echo = PromptEcho()
    # The model strategies put a person's words into a prompt: prove no one else's ever get there.
    config = make_config(**{"reflection.followup_strategy": "model", "reflection.summary_strategy": "model"})
    app = make_app(config, clock=FixedClock(), generator=echo)
    ana, ben = Chat(app, "ana"), Chat(app, "ben")
    ana.say(f"Note about {MARKER}.")
    ana.say("/reflect")
    ana.say(f"Board meeting on {MARKER}.")
    ana.say(f"They wanted {MARKER}.")
    echo.prompts.clear()
    ben.console.files_dir = exports
    ben.say("/reflect")
    ben.say("Ben's own meeting.")
    ben.say("Ben's own answer about wants.")
    ben.skip_to_review()
    ben.say("save")
    ben.say("/search board meeting note")  # words from Ana's entries, not his
    ben.say("/export")
    assert echo.prompts, "the model was asked"
    assert not any(MARKER in p for p in echo.prompts)
    assert not any(MARKER in r.text for r in ben.replies)
    files = list(exports.iterdir())
    assert len(files) == 2
    for f in files:
        assert MARKER.encode() not in f.read_bytes()


def test_export_has_everything_the_user_gave_in_markdown_and_valid_json(team, tmp_path):
    ana, ben = team["ana"], team["ben"]
    tmp_path = tmp_path / "exports"
    tmp_path.mkdir()
    ana.console.files_dir = tmp_path
    ana.say("/reflect")
    ana.say("Discharge meeting.")
    ana.say("Faster discharges.")
    ana.say("/skip")
    ana.skip_to_review()
    ana.say("save")
    ana.say("A quick note.")
    share_entry(ana, 2)
    ben.say(f"Ben's {MARKER}.")
    texts = ana.say("/export")
    assert texts[0].startswith("Here is everything you have written (2 entries)")
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".json", ".md"]
    data = json.loads(files[0].read_text())
    jsonschema.validate(data, json.loads((ROOT / "docs" / "export-schema.json").read_text()))
    assert [e["number"] for e in sorted(data["entries"], key=lambda e: e["number"])] == [1, 2]
    assert data["shares"][0]["reader_role"] == "supervisor"
    markdown = files[1].read_text()
    assert "### What?" in markdown and "### So what?" in markdown and "### Now what?" in markdown
    assert "Discharge meeting." in markdown and "A quick note." in markdown
    assert "Sue" not in markdown and "Sue" not in files[0].read_text()  # nothing about anyone else
    for f in files:
        assert MARKER not in f.read_text()


@pytest.mark.sqlite_only
def test_forget_me_asks_twice_then_erases_everything_including_from_old_backups(team, tmp_path):
    ana, ben, sue = team["ana"], team["ben"], team["sue"]
    app = ana.app
    ana.say(f"Ana's {MARKER} note.")
    share_entry(ana, 1)
    comment_on(sue, open_first_share(sue), f"Comment on {MARKER}.")
    ben.say("Ben's note stays.")
    old_backup = lifecycle.backup(app.config.data_dir, tmp_path / "backups")
    ana.say("/forget")
    assert "Last check" in press(ana, "forget:1")[0]
    assert app.journal.count_entries(ana.user) == 1  # not yet
    assert "erased" in press(ana, "forget:2")[0]
    assert app.journal.count_entries(ana.user) == 0
    assert "console:ana" not in {p.handle for p in People(app.journal).list()}
    assert sue.say("/review") == ["Nothing is shared with you at the moment."]
    for path, content in every_file_bytes(app.config.data_dir):
        assert MARKER.encode() not in content, path
    # The old backup still holds Ana's ciphertext and wrapped key, but her key is destroyed.
    keys = app.journal.keys.keystore
    raw = sqlite3.connect(old_backup)
    ana_id, wrapped = raw.execute("select u.id, k.wrapped from users u join user_keys k on k.user_id = u.id "
                                  "where u.handle = 'console:ana'").fetchone()
    raw.close()
    assert keys.get(ana_id) is None or not app.journal.keys.opens(ana_id, keys.get(ana_id), wrapped)
    # Restoring that backup finishes the erasure: she stays forgotten; Ben is all there.
    restored = tmp_path / "restored"
    shutil.copytree(app.config.data_dir / "keys", restored / "keys")
    _, counts = lifecycle.restore(old_backup, restored)
    assert counts["forgotten"] == 1
    old = SqlJournal.open(restored)
    assert old.get_entry("console:ana", 1) is None
    assert "console:ana" not in {p.handle for p in People(old).list()}
    assert old.get_entry("console:ben", 1).note == "Ben's note stays."
    old.close()
    for path, content in every_file_bytes(restored):
        assert MARKER.encode() not in content, path
    assert app.journal.get_entry("console:ben", 1).note == "Ben's note stays."


@pytest.mark.sqlite_only
def test_backup_then_restore_gives_the_same_export(team, tmp_path):
    ana = team["ana"]
    app = ana.app
    ana.say("First note.")
    ana.say("/reflect")
    ana.say("A meeting.")
    ana.say("Wants.")
    ana.say("/skip")
    ana.skip_to_review()
    ana.say("save")
    share_entry(ana, 1)
    before = ana.app.engine.sharing.export(ana.user)
    backup = lifecycle.backup(app.config.data_dir, tmp_path / "b")
    assert sqlite3.connect(backup).execute("pragma integrity_check").fetchone()[0] == "ok"
    target = tmp_path / "new-data"
    shutil.copytree(app.config.data_dir / "keys", target / "keys")
    lifecycle.restore(backup, target)
    from bot.compose import build_app
    from bot.config import load_config
    config = load_config(overrides={"paths.data_dir": str(target), "llm.enabled": False,
                                    "retrieval.enabled": False})
    restored = build_app(config, clock=app.engine.ctx.clock)
    after = restored.engine.sharing.export(ana.user)
    restored.close()
    first, second = json.loads(before[1].attachment.data), json.loads(after[1].attachment.data)
    assert first == second
    assert before[0].attachment.data == after[0].attachment.data
    with pytest.raises(lifecycle.BackupError, match="already exists"):
        lifecycle.restore(backup, target)


def test_rotating_the_master_key_keeps_everything_readable(tmp_path, open_journal, storage_url):
    journal = open_journal(tmp_path)
    journal.add_entry("console:a", Entry(kind="note", note="before rotation"), None)
    journal.close()
    old_key = (tmp_path / "keys" / "master.key").read_bytes()
    lifecycle.rotate_master_key(tmp_path, storage_url)
    new_key = (tmp_path / "keys" / "master.key").read_bytes()
    assert new_key != old_key and (tmp_path / "keys" / "master.key").stat().st_mode & 0o077 == 0
    again = open_journal(tmp_path)
    assert again.get_entry("console:a", 1).note == "before rotation"
    again.close()
    (tmp_path / "keys" / "master.key").write_bytes(old_key)
    with pytest.raises(KeyFileError):
        open_journal(tmp_path)


class Died(Exception):
    """Stands for the process dying at a chosen point."""


def _die():
    raise Died


def test_a_rotation_interrupted_after_the_keystore_moved_is_finished_on_start(tmp_path, open_journal):
    journal = open_journal(tmp_path)
    journal.add_entry("console:a", Entry(kind="note", note="kept"), None)
    old_key = (tmp_path / "keys" / "master.key").read_bytes()
    with pytest.raises(Died):
        journal.keys.keystore.rotate(after_seal=_die)  # committed under the new key, then "dies"
    new_key = (tmp_path / "keys" / "master.key.new").read_bytes()
    assert (tmp_path / "keys" / "master.key").read_bytes() == old_key != new_key
    journal.close()
    again = open_journal(tmp_path)
    assert again.get_entry("console:a", 1).note == "kept"
    assert (tmp_path / "keys" / "master.key").read_bytes() == new_key
    assert not (tmp_path / "keys" / "master.key.new").exists()
    again.close()


def test_a_rotation_that_died_before_its_commit_leaves_the_old_key_in_force(tmp_path, open_journal):
    journal = open_journal(tmp_path)
    journal.add_entry("console:a", Entry(kind="note", note="kept"), None)
    journal.close()
    old_key = (tmp_path / "keys" / "master.key").read_bytes()
    from storage.crypto import AESGCM, write_private
    write_private(tmp_path / "keys" / "master.key.new", AESGCM.generate_key(bit_length=256))  # then it died
    again = open_journal(tmp_path)
    assert again.get_entry("console:b", 1) is None
    again.add_entry("console:b", Entry(kind="note", note="after"), None)  # a write settles the keys folder
    assert again.get_entry("console:a", 1).note == "kept"
    assert (tmp_path / "keys" / "master.key").read_bytes() == old_key
    assert not (tmp_path / "keys" / "master.key.new").exists()
    again.close()


@pytest.mark.sqlite_only
def test_shared_content_comments_and_backups_hold_no_plaintext(team, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    ana, sue = team["ana"], team["sue"]
    ana.say(f"Note {MARKER}.")
    share_entry(ana, 1)
    comment_on(sue, open_first_share(sue), f"Comment {MARKER}.")
    lifecycle.backup(ana.app.config.data_dir, tmp_path / "backups")
    lifecycle.checkpoint(ana.app.journal)
    for folder in (ana.app.config.data_dir, tmp_path / "backups"):
        for path, content in every_file_bytes(folder):
            assert MARKER.encode() not in content, path
    assert MARKER not in caplog.text


def test_admin_commands_supervise_export_forget_backup_restore_rotate(tmp_path, data_dir, model_path):
    from conftest import run_cli, write_config
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    journal = SqlJournal.open(data_dir)
    person(journal, "telegram:1", "spanner", "Ana")
    person(journal, "telegram:2", "supervisor", "Sue")
    journal.add_entry("telegram:1", Entry(kind="note", note="Ana's note"), None)
    journal.close()
    args = ["--config", str(cfg)]
    assert run_cli(["admin", "supervise", "telegram:2", "telegram:1", *args]).returncode == 0
    bad = run_cli(["admin", "supervise", "telegram:1", "telegram:2", *args])
    assert bad.returncode == 2 and "not supervisor" in bad.stderr.decode()
    out = tmp_path / "sar"
    assert run_cli(["admin", "export", "telegram:1", "--to", str(out), *args]).returncode == 0
    assert "Ana's note" in next(out.glob("*.md")).read_text()
    backups = tmp_path / "backups"
    result = run_cli(["backup", str(backups), *args])
    assert result.returncode == 0, result.stderr.decode()
    assert run_cli(["admin", "rotate-key", *args]).returncode == 0
    forget = run_cli(["admin", "forget", "telegram:1", "--yes", *args])
    assert forget.returncode == 0
    journal = SqlJournal.open(data_dir)
    assert journal.count_entries("telegram:1") == 0
    journal.close()
    target = tmp_path / "restore-here"
    shutil.copytree(data_dir / "keys", target / "keys")
    restore = run_cli(["restore", str(next(backups.glob("*.db"))), "--data-dir", str(target)])
    assert restore.returncode == 0, restore.stderr.decode()


@pytest.mark.postgres
def test_forget_me_on_postgresql_leaves_a_dump_from_before_unreadable_and_a_restore_keeps_her_forgotten(
        postgres_server, make_config, tmp_path):
    # PostgreSQL has no secure_delete: her rows may linger in the server's pages, WAL and dumps. The
    # erasure rests on her destroyed key: a pg_dump taken before /forget opens nothing of hers, and a
    # database restored from it finishes erasing her at start, while Ben is all there.
    import subprocess
    from bot.compose import build_app
    url = postgres_server.fresh_database()
    app = build_app(make_config(**{"storage.url": url}), clock=FixedClock())
    try:
        for handle, role in (("console:ana", "spanner"), ("console:ben", "spanner"), ("console:sue", "supervisor")):
            person(app.journal, handle, role)
        SharingStore(app.journal).supervise("console:sue", "console:ana")
        ana, ben, sue = Chat(app, "ana"), Chat(app, "ben"), Chat(app, "sue")
        ana.say(f"Ana's {MARKER} note.")
        share_entry(ana, 1)
        comment_on(sue, open_first_share(sue), f"Comment on {MARKER}.")
        ben.say("Ben's note stays.")
        dump = tmp_path / "before.dump"
        database = url.rsplit("/", 1)[1]
        pg = postgres_server.bin_dir
        subprocess.run([str(pg / "pg_dump"), "-h", "127.0.0.1", "-p", str(postgres_server.port), "-U", "postgres",
                        "-Fc", "-f", str(dump), database], check=True, capture_output=True)
        ana.say("/forget")
        press(ana, "forget:1")
        assert "erased" in press(ana, "forget:2")[0]
        assert app.journal.count_entries(ana.user) == 0
        assert sue.say("/review") == ["Nothing is shared with you at the moment."]
        keys = app.journal.keys
    finally:
        app.close()
    restored_url = postgres_server.fresh_database(migrated=False)
    subprocess.run([str(pg / "pg_restore"), "-h", "127.0.0.1", "-p", str(postgres_server.port), "-U", "postgres",
                    "-d", restored_url.rsplit("/", 1)[1], str(dump)], check=True, capture_output=True)
    from sqlalchemy import create_engine, text
    raw = create_engine(restored_url)
    with raw.connect() as conn:
        ana_id, wrapped = conn.execute(text("select u.id, k.wrapped from users u join user_keys k on "
                                            "k.user_id = u.id where u.handle = 'console:ana'")).one()
    raw.dispose()
    store = SqlJournal.open(app.config.data_dir, url=url)  # her key is gone from the keys folder
    assert not store.keys.keystore.get(ana_id) or not store.keys.opens(ana_id, store.keys.keystore.get(ana_id),
                                                                       bytes(wrapped))
    store.close()
    old = SqlJournal.open(app.config.data_dir, url=restored_url)  # the keys folder finishes her erasure
    assert old.get_entry("console:ana", 1) is None
    assert "console:ana" not in {p.handle for p in People(old).list()}
    assert old.get_entry("console:ben", 1).note == "Ben's note stays."
    old.close()


@pytest.mark.postgres
def test_backup_and_restore_on_postgresql_refuse_in_one_line_naming_pg_dump(postgres_server, tmp_path, data_dir,
                                                                            model_path):
    from conftest import run_cli, write_config
    url = postgres_server.fresh_database()
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path, storage_url=url)
    for args in (["backup", str(tmp_path / "backups")], ["restore", str(tmp_path / "some.db")]):
        result = run_cli([*args, "--config", str(cfg)])
        err = result.stderr.decode().strip()
        assert result.returncode != 0 and len(err.splitlines()) == 1, err
        assert "pg_dump" in err and "keys folder" in err and "Traceback" not in err
    assert not (tmp_path / "backups").exists()
