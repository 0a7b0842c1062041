"""`spanner bench --scale`, the model part: a follow-up through a model server against llama.cpp in process.

Both serve the same GGUF (the configured model, by default the packaged Gemma
3 270M) with the same threads, and both are asked through the engine's
Generator port with the follow-up template, the same question and answer, and
temperature 0, so both write the same tokens. The server is llama-cpp-python's
own (`python -m llama_cpp.server`) on loopback, so the ratio shows what the
HTTP hop and server-sent events cost, not a faster machine. Runs alternate so
drift on a shared host touches both alike.

Then several people at once (USERS follow-ups sent together): through
llama-cpp-python's server, one at a time behind Spanner's fair queue, and, when
llama.cpp's own `llama-server` is on the PATH (or in SPANNER_LLAMA_SERVER),
through `llama-server -np USERS`, which batches them into parallel slots.
Numbers are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from .bench import line, pct
from .config import Config

USERS = 4
VARS = {"question": "Where did power sit, formally and informally?",
        "answer": "The chair had the formal say but the finance lead shaped every decision."}


def _timed(generator, user: str) -> tuple[float, float, int]:
    """(seconds to the whole follow-up, seconds to its first words, tokens) for one generation."""
    first: list[float] = []

    async def once():
        started = time.perf_counter()
        result = await generator.generate(user, "followup", VARS,
                                          on_partial=lambda _t: first or first.append(time.perf_counter()))
        return started, time.perf_counter(), result

    tokens = generator.stats.tokens
    started, done, result = asyncio.run(once())
    if result.status != "ok":
        raise RuntimeError(f"generation {result.status}")
    return done - started, (first[0] - started) if first else float("nan"), generator.stats.tokens - tokens


def _at_once(generator, users: int) -> tuple[float, list[float]]:
    """(seconds until every follow-up is back, each person's seconds) for `users` asked together."""
    async def everyone():
        async def one(i: int) -> float:
            started = time.perf_counter()
            result = await generator.generate(f"bench:user{i}", "followup", VARS)
            if result.status != "ok":
                raise RuntimeError(f"generation {result.status}")
            return time.perf_counter() - started
        started = time.perf_counter()
        each = await asyncio.gather(*(one(i) for i in range(users)))
        return time.perf_counter() - started, list(each)
    return asyncio.run(everyone())


def _many_users_line(label: str, generator, reps: int) -> None:
    _at_once(generator, USERS)  # warm
    walls, each = [], []
    for _ in range(reps):
        wall, times = _at_once(generator, USERS)
        walls.append(wall)
        each += times
    line(f"{USERS} follow-ups at once, {label}", f"all back p50 {pct(walls, 50) * 1000:.0f} ms",
         f"per person p95 {pct(each, 95) * 1000:.0f} ms")


def bench_llm_server(config: Config, runs: int = 10) -> int:
    from .compose import model_path_for
    from .engine.prompt_data import load_prompt_data
    from .llm.llama_generator import WORKER_NICE, LlamaGenerator
    from .llm.local_server import start_llama_cpp_server, stop_server
    from .llm.server_generator import ServerGenerator

    model = model_path_for(config)
    if not model.is_file():
        line("follow-up latency, model server / embedded", "not measured", f"no model at {model}")
        return 2
    templates = load_prompt_data(config.paths.prompts_dir).templates
    sampling = dict(max_tokens=config.llm.max_tokens, temperature=0.0, timeout_seconds=120)
    threads = config.llm.threads
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc, url = start_llama_cpp_server(model, Path(tmp) / "server.log", threads=threads,
                                               context_tokens=config.llm.context_tokens,
                                               priority=WORKER_NICE)
        except Exception as exc:  # the [server] extra missing, a port taken: say so, measure the rest
            line("follow-up latency, model server / embedded", "not measured", str(exc).splitlines()[0][:80])
            return 1
        embedded = LlamaGenerator(model, templates, threads=threads, context_tokens=config.llm.context_tokens,
                                  mode="completion", **sampling)
        server = ServerGenerator(url, templates, api="completions", **sampling)
        try:
            embedded.start()
            embedded.wait_ready(120)
            _timed(embedded, "bench:warm")  # load and the prompt cache, once each side
            _timed(server, "bench:warm")
            got: dict[str, list[tuple[float, float, int]]] = {"embedded": [], "server": []}
            for _ in range(runs):
                got["embedded"].append(_timed(embedded, "bench:embedded"))
                got["server"].append(_timed(server, "bench:server"))
            embedded.close()
            _print_ratio(got, threads, runs)
            _many_users_line("llama_cpp.server (one at a time)", server, max(2, runs // 3))
        finally:
            server.close()
            embedded.close()
            stop_server(proc)
        _bench_slots(model, templates, sampling, threads, config.llm.context_tokens, Path(tmp), max(2, runs // 3))
    return 0


def _print_ratio(got: dict, threads: int, runs: int) -> None:
    whole = {k: [t[0] for t in v] for k, v in got.items()}
    first = {k: [t[1] for t in v] for k, v in got.items()}
    tokens = {k: statistics.median(t[2] for t in v) for k, v in got.items()}
    for side, label in (("embedded", "embedded llama.cpp"), ("server", "llama_cpp.server on loopback")):
        line(f"follow-up p50 / p95, {label}", f"{pct(whole[side], 50) * 1000:.0f} / {pct(whole[side], 95) * 1000:.0f} ms",
             f"first words p50 {pct(first[side], 50) * 1000:.0f} ms, {tokens[side]:.0f} tokens")
    ratio = statistics.median(whole["server"]) / statistics.median(whole["embedded"])
    line("follow-up latency ratio, model server / embedded", f"{ratio:.2f}",
         f"same prompt, temperature 0, {threads} threads, {runs} runs each")


def _bench_slots(model: Path, templates, sampling: dict, threads: int, context_tokens: int, tmp: Path,
                 reps: int) -> None:
    """USERS follow-ups at once through llama.cpp's `llama-server -np USERS`, if it is installed here."""
    from .llm.llama_generator import WORKER_NICE
    from .llm.local_server import start_llama_server, stop_server
    from .llm.server_generator import ServerGenerator

    binary = os.environ.get("SPANNER_LLAMA_SERVER") or shutil.which("llama-server")
    label = f"llama-server -np {USERS}"
    if not binary:
        line(f"{USERS} follow-ups at once, {label}", "not measured", "no llama-server on the PATH")
        return
    try:
        proc, url = start_llama_server(binary, model, tmp / "llama-server.log", slots=USERS, threads=threads,
                                       context_tokens=context_tokens, priority=WORKER_NICE)
    except Exception as exc:
        line(f"{USERS} follow-ups at once, {label}", "not measured", str(exc).splitlines()[0][:80])
        return
    server = ServerGenerator(url, templates, api="completions", parallel=USERS, **sampling)
    try:
        _timed(server, "bench:warm")
        got = [_timed(server, "bench:slots") for _ in range(reps)]
        line(f"follow-up p50, {label}, one person", f"{pct([t[0] for t in got], 50) * 1000:.0f} ms")
        _many_users_line(label, server, reps)
    finally:
        server.close()
        stop_server(proc)
