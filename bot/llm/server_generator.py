"""The model on an OpenAI-compatible server (`llm.server_url`) instead of in this process.

Implements the engine's Generator port like the embedded llama.cpp generator
and shares its fair queue, request, sampling, stream reading and deadline
(generation.py). With a base model (the default Gemma 3 270M) it posts our own
few-shot prompt to /v1/completions; with an instruct model (`llm.server_api =
"chat"`) our system and user messages to /v1/chat/completions. Both stream
with server-sent events, so the first words reach the person while the rest
is written.

`llm.server_parallel` worker threads each keep one request in flight: 1 for
llama-cpp-python's own server (it serves one generation at a time, and by
default a new request cuts the one in progress short), N for llama.cpp's
`llama-server -np N`, vLLM or Ollama. A stream cut short without a finish
reason counts as a failure, never as a question.

A server that is down, a timeout or an error gives a status, never an
exception: the engine asks a curated question instead. The log gets one line
when the server stops answering and one when it answers again: the kind of
failure and the server's address, never any text. A server that wants a key
gets it from the SPANNER_LLM_API_KEY environment variable as a bearer token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Iterator
from urllib.parse import urlsplit

import httpx
from httpx_sse import EventSource, SSEError, connect_sse

from bot.engine.ports import Generation
from bot.engine.prompt_data import Template

from .generation import Interrupted, Job, QueuedGenerator, failed, stream_text

log = logging.getLogger(__name__)

#: Where the model server's key comes from, if it wants one (secrets never live in the config file).
LLM_API_KEY_ENV = "SPANNER_LLM_API_KEY"
ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
#: How long to wait for a connection before calling the server down (a refused one fails at once).
CONNECT_SECONDS = 3.0


def server_label(url: str) -> str:
    """scheme://host:port of the server, for logs: never a path, query or anything after them."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


class ServerGenerator(QueuedGenerator):
    """Generator port over an OpenAI-compatible HTTP server. start() once; close() at shutdown."""

    def __init__(self, url: str, templates: dict[str, Template], *, api: str = "completions", model: str = "",
                 parallel: int = 1, max_tokens: int = 48, summary_max_tokens: int = 80, temperature: float = 0.7,
                 summary_temperature: float = 0.3, timeout_seconds: float = 8.0, api_key: str | None = None):
        super().__init__(templates, max_tokens=max_tokens, summary_max_tokens=summary_max_tokens,
                         temperature=temperature, summary_temperature=summary_temperature,
                         timeout_seconds=timeout_seconds)
        self.url = url.rstrip("/")
        # A server URL may end in /v1 (as OpenAI clients expect) or not: the endpoint adds it once.
        base = self.url[:-3] if self.url.endswith("/v1") else self.url
        self.endpoint = base + ENDPOINTS[api]
        self.api = api
        self.model = model
        self.parallel = parallel
        self.label = server_label(url)
        # trust_env=False: no proxy from the environment and no .netrc: journal text goes to the
        # configured server and nowhere else.
        # The key (from SPANNER_LLM_API_KEY, never the config file) goes in a header and nowhere else.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(trust_env=False, limits=httpx.Limits(max_connections=parallel), headers=headers)
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._down = False  # the server stopped answering (logged once until it answers again)

    @property
    def available(self) -> bool:
        # Whether the server answers is known only by asking: each request says "unavailable" if not.
        return not self._closing.is_set()

    @property
    def uses_chat_template(self) -> bool:
        return self.api == "chat"

    def start(self) -> None:
        with self._start_lock:
            if not self._threads:
                for i in range(self.parallel):
                    thread = threading.Thread(target=self._serve, name=f"spanner-llm-server-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)

    def wait_ready(self, timeout: float | None = None) -> bool:
        return True  # nothing to load here: the server holds the model

    def close(self) -> None:
        self._closing.set()
        self._queue.close()
        for thread in self._threads:
            thread.join(timeout=CONNECT_SECONDS + 2)
        self._client.close()

    # ----- one request ----------------------------------------------------------

    def _execute(self, job: Job) -> Generation:
        body = {**self.body(job, self.api == "chat"), "stream": True}
        if self.model:
            body["model"] = self.model
        left = max(0.01, job.deadline - time.monotonic())
        # Reads wait at most until the deadline: a server busy with someone else's request is a timeout.
        timeout = httpx.Timeout(left, connect=min(left, CONNECT_SECONDS))
        try:
            with connect_sse(self._client, "POST", self.endpoint, json=body, timeout=timeout) as source:
                if source.response.status_code != 200:
                    self._answering()
                    return failed(self.stats, "failed", f"model server answered HTTP {source.response.status_code}")
                result = stream_text(_chunks(source), job, self.stats, self._closing, require_finish=True)
            self._answering()
            return result
        except httpx.TimeoutException as exc:
            return failed(self.stats, "timeout", f"model server {type(exc).__name__}")
        except httpx.TransportError as exc:  # refused, reset, closed mid-stream: the server is not there
            self.stats.failures += 1
            if not self._down:
                self._down = True
                log.warning("model server at %s not answering (%s): curated questions until it does",
                            self.label, type(exc).__name__)
            return Generation("", "unavailable")
        except Interrupted:
            self._answering()
            return failed(self.stats, "failed", "model server ended the stream early")
        except (SSEError, ValueError, KeyError, TypeError, AttributeError, IndexError, httpx.HTTPError) as exc:
            return failed(self.stats, "failed", f"model server reply not understood ({type(exc).__name__})")

    def _answering(self) -> None:
        if self._down:
            self._down = False
            log.info("model server at %s answers again", self.label)


def _chunks(source: EventSource) -> Iterator[dict]:
    """The JSON chunks of an OpenAI-style event stream, up to its closing [DONE]."""
    for event in source.iter_sse():
        data = event.data.strip()
        if data == "[DONE]":
            return
        if data:
            yield json.loads(data)
