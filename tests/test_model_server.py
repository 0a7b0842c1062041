"""`llm.server_url`: the model on llama-cpp-python's own OpenAI-compatible server, on loopback.

The real server (`python -m llama_cpp.server`) serves the packaged Gemma 3 270M,
started once for this module. Spanner reaches it through the same Generator
port, guard and fallbacks as the model in its own process: a follow-up streams
(its first words arrive before the whole), a timeout, a server that is down or
one killed mid-stream give curated questions and lose nothing, the log says so
in one line without any text, and every connection stays on loopback, checked
with strace.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.engine.prompt_data import load_prompt_data
from bot.llm.local_server import ServerFailed, free_port, start_llama_cpp_server, stop_server
from bot.llm.server_generator import LLM_API_KEY_ENV, ServerGenerator
from conftest import SPANNER, Chat, FixedClock, write_config
from test_no_egress import LOOPBACK, _network_calls, _traced

VARS = {"question": "Where did power sit, formally and informally?",
        "answer": "The chair had the formal say but the finance lead shaped every decision."}
ANSWERS = ["Discharge planning with the ward and the council.",
           "The ward wanted beds freed and the council wanted more notice before each discharge.",
           "The finance lead shaped every decision, though the chair had the formal say."]


KEY = "test-key-for-the-loopback-server"


def start_server(model_path: Path, log: Path, api_key: str | None = None):
    try:
        return start_llama_cpp_server(model_path, log, api_key=api_key)
    except ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def model_server(model_path, tmp_path_factory):
    """The shared server asks for a key, so every test here also shows Spanner sends it."""
    proc, url = start_server(model_path, tmp_path_factory.mktemp("server") / "server.log", api_key=KEY)
    yield url
    stop_server(proc)


@pytest.fixture(autouse=True)
def server_key(monkeypatch):
    monkeypatch.setenv(LLM_API_KEY_ENV, KEY)


def _server_app(make_app, make_config, url: str, **overrides):
    values = {"llm.server_url": url, "reflection.followup_strategy": "model", "llm.timeout_seconds": 60}
    values.update(overrides)
    return make_app(make_config(**values), clock=FixedClock())


def _reflect(app, user: str) -> list[list[str]]:
    """A reflection's first answers, as the replies to each line."""
    chat = Chat(app, user)
    try:
        return [chat.say(line) for line in ["/reflect", *ANSWERS]]
    finally:
        chat.close()


def test_a_follow_up_streams_through_the_model_server_its_first_words_before_the_whole(
        make_app, make_config, model_server):
    app = _server_app(make_app, make_config, model_server)
    assert type(app.generator).__name__ == "ServerGenerator"
    seen: list[tuple[float, str]] = []

    async def ask():
        started = time.perf_counter()
        result = await app.generator.generate("console:sam", "followup", VARS,
                                              on_partial=lambda text: seen.append((time.perf_counter(), text)))
        return started, time.perf_counter(), result

    started, finished, result = asyncio.run(ask())
    assert result.status == "ok" and result.text
    assert len(seen) >= 2, "the reply came whole, not streamed"
    assert seen[0][0] < seen[-1][0] <= finished
    assert result.text.startswith(seen[0][1].strip()) and len(seen[0][1].strip()) < len(result.text)
    assert all(b[1].startswith(a[1]) for a, b in zip(seen, seen[1:]))  # each partial grows the last
    assert seen[-1][1].strip() == result.text
    # Through the engine: the follow-up after an answer is asked of the server, then guarded as always.
    before = app.generator.stats.completed
    replies = _reflect(app, "sam")
    assert app.generator.stats.completed > before and app.generator.stats.failures == 0
    assert all(r for r in replies)


def test_an_instruct_model_on_the_server_is_asked_through_chat_completions(model_server):
    prompts = load_prompt_data(load_config().paths.prompts_dir)
    generator = ServerGenerator(model_server + "/v1", prompts.templates, api="chat", max_tokens=24,
                                timeout_seconds=60, api_key=KEY)
    try:
        assert generator.endpoint == model_server + "/v1/chat/completions"
        result = asyncio.run(generator.generate("console:cal", "followup", VARS))
        assert result.status == "ok" and generator.stats.completed == 1
        assert "Answer:" not in result.text  # our messages, not the few-shot page
    finally:
        generator.close()


def test_a_model_server_refusing_the_key_gives_curated_questions_and_a_line_naming_the_status(
        make_app, make_config, model_server, monkeypatch, data_dir):
    monkeypatch.setenv(LLM_API_KEY_ENV, "not-the-key")
    curated = _curated_replies(make_app, make_config, "kim")
    app = _server_app(make_app, make_config, model_server)
    assert _questions(_reflect(app, "kim")) == curated
    assert app.generator.stats.failures >= 1 and app.generator.stats.completed == 0
    log = (data_dir / "logs" / "spanner.log").read_text()
    assert "model server answered HTTP 401" in log and "not-the-key" not in log


def _curated_replies(make_app, make_config, user: str) -> list[list[str]]:
    """What the default (curated) strategy asks someone else after the same answers: the expected fallback."""
    return _reflect(make_app(make_config(**{"reflection.followup_strategy": "curated"}), clock=FixedClock()),
                    user + "-curated")


def _questions(replies: list[list[str]]) -> list[str]:
    """The replies without the one-off note that the model is not available."""
    return [[r for r in rs if "local model isn't available" not in r] for rs in replies]


def test_a_model_server_too_slow_for_the_timeout_gives_the_curated_question_and_keeps_the_answer(
        make_app, make_config, model_server):
    curated = _curated_replies(make_app, make_config, "tim")
    app = _server_app(make_app, make_config, model_server, **{"llm.timeout_seconds": 0.05})
    replies = _reflect(app, "tim")
    assert _questions(replies) == curated
    assert app.generator.stats.timeouts >= 1 and app.generator.stats.completed == 0
    state = app.journal.load_state("console:tim")["reflect"]
    assert ANSWERS[1] in str(state) and ANSWERS[2] in str(state)  # nothing the person wrote was lost


def test_a_model_server_that_is_down_gives_curated_questions_and_one_log_line_without_text(
        make_app, make_config, data_dir):
    curated = _curated_replies(make_app, make_config, "dan")
    app = _server_app(make_app, make_config, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.perf_counter()
    replies = _reflect(app, "dan")
    assert time.perf_counter() - started < 30  # refused at once, not waited out
    assert _questions(replies) == curated
    assert any("local model isn't available" in r for rs in replies for r in rs)  # said once, gently
    log = (data_dir / "logs" / "spanner.log").read_text()
    down = [line for line in log.splitlines() if "not answering" in line]
    assert len(down) == 1 and "ConnectError" in down[0], down
    for answer in ANSWERS:
        for words in (answer, answer.split()[1] + " " + answer.split()[2]):
            assert words not in log


def test_a_model_server_killed_mid_stream_ends_in_curated_questions_that_carry_on(
        make_app, make_config, model_path, tmp_path):
    proc, url = start_server(model_path, tmp_path / "server.log")
    try:
        app = _server_app(make_app, make_config, url)

        def kill_at_first_words(_text: str) -> None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

        result = asyncio.run(app.generator.generate("console:kai", "followup", VARS,
                                                    on_partial=kill_at_first_words))
        assert result.status == "unavailable" and result.text == ""
        curated = _curated_replies(make_app, make_config, "kai")
        assert _questions(_reflect(app, "kai")) == curated
    finally:
        stop_server(proc)


def test_model_server_traffic_stays_on_loopback_at_the_os_level(tmp_path, data_dir, model_path, model_server):
    port = int(model_server.rsplit(":", 1)[1])
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path,
                       f'server_url = "{model_server}"\ntimeout_seconds = 60\n'
                       '\n[reflection]\nfollowup_strategy = "model"\n')
    trace = tmp_path / "chat.strace"
    chat = _traced(["chat", "--config", str(cfg), "--user", "lou"], trace, dict(os.environ),
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        out, _ = chat.communicate(("\n".join(["/reflect", *ANSWERS]) + "\n").encode(), timeout=180)
    finally:
        if chat.poll() is None:
            chat.kill()
    assert b"(3/9)" in out
    inet, dns, names = _network_calls(trace)
    assert not dns and not names, (dns + names)[:3]
    to_server = [line for address, p, line in inet if address.startswith(LOOPBACK) and p == port]
    assert len(to_server) >= 1, "strace saw no connection to the model server"
    assert not [line for address, _, line in inet if not address.startswith(LOOPBACK)], inet[:3]


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://127.0.0.1:8080", "http://", "http://h:port",
                                 "http://user:pw@127.0.0.1:8080"])
def test_a_malformed_server_url_is_one_line_naming_the_key_and_the_fix(tmp_path, url):
    path = tmp_path / "bad.toml"
    path.write_text(f'[llm]\nserver_url = "{url}"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "llm.server_url" in message and "fix: use the model server's address" in message
    assert "\n" not in message


@pytest.mark.parametrize("strategy", ["adapter", "pool"])
def test_the_adapter_with_a_model_server_is_refused_in_one_line_with_the_fix(tmp_path, strategy):
    path = tmp_path / "bad.toml"
    path.write_text(f'[llm]\nserver_url = "http://127.0.0.1:8080"\n\n[reflection]\nfollowup_strategy = "{strategy}"\n')
    result = subprocess.run([SPANNER, "chat", "--config", str(path)], input=b"/help\n", capture_output=True,
                            timeout=60)
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert "llm.server_url" in err and "llm.adapter_path" in err and "fix:" in err
    assert result.stdout == b""
