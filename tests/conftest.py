"""Shared fixtures: every path redirected to a temp dir; real model, real chroma, real SQLite.

The packaged model is assembled once per test session and the literature index
is built once, then copied into each test's data directory, so each test gets
its own database, keys and index without paying for ingest again.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
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
    build_literature(config, embedder).ingest_dir(config.paths.knowledge_dir)
    safety_banks(config, load_prompt_data(config.paths.prompts_dir), embedder)  # fills base/cache once
    return base


@pytest.fixture
def data_dir(tmp_path, literature_template) -> Path:
    target = tmp_path / "data"
    shutil.copytree(literature_template / "chroma", target / "chroma")
    shutil.copytree(literature_template / "cache", target / "cache")
    return target


@pytest.fixture
def make_config(data_dir, model_path):
    def make(**overrides):
        values = {"paths.data_dir": str(data_dir), "llm.model_path": str(model_path), "llm.threads": 2}
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


def write_config(path: Path, data_dir: Path, model_path: Path, extra: str = "") -> Path:
    path.write_text(f'[paths]\ndata_dir = "{data_dir}"\n\n[llm]\nmodel_path = "{model_path}"\nthreads = 2\n{extra}',
                    encoding="utf-8")
    return path


def every_file_bytes(directory: Path):
    for p in Path(directory).rglob("*"):
        if p.is_file():
            yield p, p.read_bytes()
