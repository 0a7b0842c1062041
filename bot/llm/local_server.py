"""llama-cpp-python's own OpenAI-compatible server on loopback, for `spanner bench --scale` and the tests.

Spanner itself never starts a model server: an operator runs one (see the
README) and points `llm.server_url` at it. The benchmark and the tests need a
real one to measure and to talk to, serving the same GGUF the embedded path
loads: `python -m llama_cpp.server`, from the `[server]` extra of
llama-cpp-python (installed with Spanner's `test` extra).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


class ServerFailed(RuntimeError):
    """The server exited or never answered; the message says which, with the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_cpp_server(model_path: Path, log: Path, *, threads: int = 2, context_tokens: int = 2048,
                           port: int | None = None, wait_seconds: float = 120,
                           priority: int | None = None, api_key: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start llama-cpp-python's server on a loopback port; once it answers: (process, base URL).

    `priority`: the server's nice value (the benchmark gives it the embedded worker's, for a fair race);
    `api_key`: the bearer key it then asks of every request."""
    port = port or free_port()
    # --interrupt_requests False: a second request waits for the first instead of cutting it short.
    return _start([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
                   "--port", str(port), "--n_ctx", str(context_tokens), "--n_threads", str(threads),
                   "--n_threads_batch", str(threads), "--interrupt_requests", "False",
                   *(["--api_key", api_key] if api_key else [])],
                  port, "/v1/models", log, wait_seconds, priority)


def start_llama_server(binary: str, model_path: Path, log: Path, *, slots: int, threads: int = 2,
                       context_tokens: int = 2048, wait_seconds: float = 120,
                       priority: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start llama.cpp's own `llama-server -np SLOTS`, each slot with `context_tokens`: (process, base URL)."""
    port = free_port()
    return _start([binary, "-m", str(model_path), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots),
                   "-c", str(context_tokens * slots), "-t", str(threads), "-tb", str(threads)],
                  port, "/health", log, wait_seconds, priority)


def _start(command: list[str], port: int, ready_path: str, log: Path, wait_seconds: float,
           priority: int | None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            preexec_fn=None if priority is None else lambda: os.setpriority(os.PRIO_PROCESS, 0, priority))
    url = f"http://127.0.0.1:{port}"
    name = Path(command[0]).name if command[0] != sys.executable else command[2]
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"{name} exited: {log.read_text(errors='replace')[-800:]}")
        try:
            # 401: up, and asking for its key (llama-server's /health says 503 while it loads).
            if httpx.get(url + ready_path, timeout=1, trust_env=False).status_code in (200, 401):
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise ServerFailed(f"{name} did not answer within {wait_seconds:.0f} s")


def stop_server(proc: subprocess.Popen, wait_seconds: float = 10) -> None:
    """Ask the server to stop; kill it if it has not within `wait_seconds`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
