"""The literature index on a Chroma server (`retrieval.server_url`), against a real `chroma run` on loopback.

One server per module, started by the test on a free port with a temporary
folder (restarted if a test killed it); embeddings are computed by Spanner, so
the server holds only the public literature cards. `spanner ingest` fills it,
and it must then give the same suggestions as the embedded index. A server that
is down at start, dies or hangs mid-run costs only the literature ideas: one
line, and the reflection goes on. Nothing but loopback, checked with strace.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.llm.local_server import free_port, stop_server
from conftest import ROOT, SPANNER, Chat, LiveChat, run_cli, write_config
from test_reflection import ANSWERS, in_followup

CHROMA = str(Path(sys.executable).parent / "chroma")
# The reflection's own-reading answers hit these cards in the embedded index (test_reflection's story).
QUERIES = [
    ANSWERS["power"] + " " + ANSWERS["story"],
    ANSWERS["wants"],
    "I felt exhausted and cynical after the third meeting this week; people say nothing ever changes.",
    "Everyone agreed in the room but nobody owned the action, and the council lead kept quiet.",
    "A meeting.",
]


class ChromaRun:
    """`chroma run` on loopback, as the deployment guide starts it (telemetry off in its environment)."""

    def __init__(self, path: Path, port: int | None = None, wrap: list[str] | None = None):
        self.path, self.port, self.wrap = path, port or free_port(), wrap or []
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ChromaRun":
        log = open(self.path.parent / f"{self.path.name}-{self.port}.log", "ab")
        self.proc = subprocess.Popen([*self.wrap, CHROMA, "run", "--path", str(self.path), "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"chroma run exited with {self.proc.returncode}")
                time.sleep(0.1)
        raise AssertionError("chroma run never answered its heartbeat")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)  # a test may have paused it
        stop_server(self.proc, wait_seconds=15)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    server = ChromaRun(tmp_path_factory.mktemp("chroma-server") / "db").start()
    yield server
    server.stop()


@pytest.fixture
def chroma_server(module_server):
    """The module's server, started again on its folder and port if a test stopped it."""
    if not module_server.alive():
        module_server.start()
    return module_server


def server_config(path: Path, data_dir: Path, model_path: Path, url: str, extra: str = "") -> Path:
    return write_config(path, data_dir, model_path, f'\n[retrieval]\nserver_url = "{url}"\n{extra}')


@pytest.fixture(scope="module")
def ingested_once(module_server, tmp_path_factory, literature_template, model_path):
    """The server filled by `spanner ingest` (twice: the second must find nothing to do); their outputs."""

    base = tmp_path_factory.mktemp("ingest")
    shutil.copytree(literature_template / "cache", base / "data" / "cache")  # the risk screen's, as elsewhere
    cfg = server_config(base / "server.toml", base / "data", model_path, module_server.url)
    runs = [run_cli(["ingest", "--config", str(cfg), "--quiet"]) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr.decode()
    return [r.stdout.decode() for r in runs]


@pytest.fixture
def ingested(ingested_once, chroma_server):
    return chroma_server, ingested_once


def test_spanner_ingest_fills_a_chroma_server_once_and_it_suggests_what_the_embedded_index_does(
        ingested, make_config):
    from bot.compose import build_embedder, build_literature

    server, outputs = ingested
    cards = len([p for p in (ROOT / "knowledge").glob("*.md") if p.name.lower() != "readme.md"])
    assert f"{cards} cards" in outputs[0]
    assert f"0 embedded (0 chunks), {cards} unchanged, 0 removed" in outputs[1]  # idempotent
    embedded_config = make_config()
    embedder = build_embedder(embedded_config)
    embedded = build_literature(embedded_config, embedder)
    remote = build_literature(make_config(**{"retrieval.server_url": server.url}), embedder)
    assert remote.count() == embedded.count() > 0
    offered = 0
    for query in QUERIES:
        here = [(m.card_id, round(m.similarity, 4)) for m in embedded.matches(query)]
        there = [(m.card_id, round(m.similarity, 4)) for m in remote.matches(query)]
        assert there == here, query
        offered += bool(here)
    assert 2 <= offered < len(QUERIES)  # some fit a card and some fit none, on both
    assert remote.client.get_settings().anonymized_telemetry is False


def _reflect(chat: Chat) -> list[str]:
    """A whole reflection with test_reflection's answers, follow-ups skipped, saved; every reply text."""
    texts = chat.say("/reflect")
    for step in chat.app.prompts.protocols["after_meeting"].steps:
        texts += chat.say(ANSWERS[step.id])
        if in_followup(chat):
            texts += chat.say("/skip")
    assert any("summary" in t.lower() for t in texts), texts[-3:]
    return texts + chat.say("save")


def test_a_reflection_offers_a_literature_idea_from_the_chroma_server(ingested, make_app, make_config):
    server, _ = ingested
    chat = Chat(make_app(make_config(**{"retrieval.server_url": server.url})))
    try:
        ideas = [t for t in _reflect(chat) if "From: " in t]
        assert len(ideas) == 1
        entry = chat.app.journal.get_entry(chat.user, 1)
        assert entry.suggestion and entry.suggestion.split(",")[0] in ideas[0]
    finally:
        chat.close()


def _server_lines(data_dir: Path) -> list[str]:
    log = data_dir / "logs" / "spanner.log"
    return [line for line in log.read_text().splitlines() if "retrieval.server_url" in line] if log.exists() else []


def test_a_chroma_server_that_is_down_at_start_costs_the_literature_ideas_and_nothing_else(
        make_app, make_config, data_dir):
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    app = make_app(make_config(**{"retrieval.server_url": url}))
    note = [n for n in app.notes if "server" in n]
    assert len(note) == 1 and "retrieval.server_url" in note[0] and "chroma run" in note[0], app.notes
    chat = Chat(app)
    try:
        texts = _reflect(chat)
        assert not [t for t in texts if "From: " in t]
        assert chat.app.journal.count_entries(chat.user) == 1  # the reflection was saved
        assert chat.app.journal.get_entry(chat.user, 1).answers
    finally:
        chat.close()
    assert len(_server_lines(data_dir)) == 1, _server_lines(data_dir)  # one line, not one per message


def test_a_chroma_server_that_hangs_or_dies_mid_run_costs_only_the_literature_until_it_is_back(
        ingested, make_app, make_config, data_dir):
    server, _ = ingested
    app = make_app(make_config(**{"retrieval.server_url": server.url, "retrieval.server_timeout_seconds": 1.0}))
    assert not [n for n in app.notes if "server" in n]
    app.literature.server.retry_seconds = 0  # the test's clock: try the server again at every message
    chat = Chat(app)
    try:
        chat.say("/reflect")
        chat.say(ANSWERS["meeting"])
        os.kill(server.proc.pid, signal.SIGSTOP)  # it hangs: accepts connections, never answers
        started = time.monotonic()
        texts = _reflect_rest(chat)
        assert time.monotonic() - started < 30  # bounded by the timeout, not kept waiting for ever
        assert not [t for t in texts if "From: " in t]
        server.stop()  # and now it is gone altogether
        texts = _reflect(chat)
        assert not [t for t in texts if "From: " in t]
        assert chat.app.journal.count_entries(chat.user) == 2
        server.start()  # back on the same folder and port: ideas come back without a restart
        texts = _reflect(chat)
        assert len([t for t in texts if "From: " in t]) == 1
    finally:
        chat.close()
    lines = _server_lines(data_dir)
    assert any("not answering" in line for line in lines) and "answers again" in lines[-1], lines
    assert all(ANSWERS["power"][:20] not in line for line in lines)


def _reflect_rest(chat: Chat) -> list[str]:
    texts = []
    for step in chat.app.prompts.protocols["after_meeting"].steps[1:]:
        texts += chat.say(ANSWERS[step.id])
        if in_followup(chat):
            texts += chat.say("/skip")
    return texts + chat.say("save")


def test_spanner_ingest_against_a_chroma_server_that_is_down_says_so_in_one_line(tmp_path, data_dir, model_path):
    cfg = server_config(tmp_path / "c.toml", data_dir, model_path, f"http://127.0.0.1:{free_port()}")
    run = run_cli(["ingest", "--config", str(cfg), "--quiet"])
    err = run.stderr.decode().strip()
    assert run.returncode == 2 and len(err.splitlines()) == 1, err
    assert "retrieval.server_url" in err and "not answering" in err and "chroma run --path" in err


@pytest.mark.parametrize("url", ["localhost:8000", "http://127.0.0.1", "tcp://127.0.0.1:8000",
                                 "http://user:pw@127.0.0.1:8000", "http://127.0.0.1:8000/chroma",
                                 "http://127.0.0.1:99999"])
def test_a_malformed_chroma_server_url_is_one_line_naming_the_key_and_the_fix(tmp_path, data_dir, model_path, url):
    from bot.config import ConfigError, load_config

    cfg = server_config(tmp_path / "c.toml", data_dir, model_path, url)
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    message = str(caught.value)
    assert "retrieval.server_url" in message and "fix:" in message and "\n" not in message
    assert "http://127.0.0.1:8000" in message.split("fix:")[1]


class TracedChat(LiveChat):
    """`spanner chat` under strace, fed and read like LiveChat."""

    def __init__(self, cfg: Path, trace: Path, env: dict):
        self.proc = subprocess.Popen([shutil.which("strace"), "-f", "-qq", "-e", "trace=network", "-o", str(trace),
                                      SPANNER, "chat", "--config", str(cfg), "--user", "net"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.seen = b""


def test_spanner_with_a_chroma_server_connects_to_nothing_but_loopback_at_the_os_level(
        tmp_path, data_dir, model_path):
    """The chat (ingest, then a reflection that is offered an idea) and the server, both under strace."""
    from test_no_egress import LOOPBACK, _network_calls, _stop

    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is not installed: the egress test needs it (.ci/run installs it with apt-get)")
    server_trace, chat_trace = tmp_path / "server.strace", tmp_path / "chat.strace"
    server = ChromaRun(tmp_path / "db", wrap=[strace, "-f", "-qq", "-e", "trace=network", "-o", str(server_trace)])
    server.start()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    for switch in ("ORT_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "ANONYMIZED_TELEMETRY"):
        env.pop(switch, None)  # Spanner must switch them off itself
    try:
        cfg = server_config(tmp_path / "c.toml", data_dir, model_path, server.url,
                            "\n[reflection]\nfollowups = false\n\n[voice]\nenabled = false\n")
        ingest = subprocess.run([strace, "-f", "-qq", "-e", "trace=network", "-o", str(tmp_path / "ingest.strace"),
                                 SPANNER, "ingest", "--config", str(cfg), "--quiet"], env=env, capture_output=True)
        assert ingest.returncode == 0, ingest.stderr.decode()[-500:]
        chat = TracedChat(cfg, chat_trace, env)
        chat.send("/reflect")
        for step_id in ("meeting", "wants", "engagement", "level", "power", "story", "knock_on"):
            chat.send(ANSWERS[step_id])  # the idea is offered once they have given their own reading (knock_on)
        chat.wait_for("(8/9)", timeout=60)
        out = chat.close(timeout=60)
        assert "From: " in out  # an idea came from the server
    finally:
        if server.alive():
            _stop(server.proc)
    for trace, port in ((tmp_path / "ingest.strace", server.port), (chat_trace, server.port), (server_trace, None)):
        inet, dns, names = _network_calls(trace)
        assert not dns and not names, (trace.name, (dns + names)[:3])
        assert not [line for address, _, line in inet if not address.startswith(LOOPBACK)], (trace.name, inet[:3])
        if port is not None:
            assert any(p == port for _, p, _ in inet), f"{trace.name}: no connection to the server seen"
