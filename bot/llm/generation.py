"""What every Generator behind the engine shares: the fair queue, the request, the stream, the deadline.

Two generators implement the engine's Generator port: llama.cpp in this
process (llama_generator.py) and an OpenAI-compatible model server
(server_generator.py). Both queue requests fairly (round-robin across users),
build the same OpenAI-shaped request from a template in prompts/templates
(prompt and stop strings for a base model, messages for an instruct model,
with the configured sampling), read the same streamed chunks, pass each
partial text on, and honour the same deadline per token. A failure or a
timeout comes back as a status, never as an exception, so the conversation
goes on with curated lines.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from bot.engine.ports import Generation, Status
from bot.engine.prompt_data import Template

from .fair_queue import FairQueue

log = logging.getLogger(__name__)


@dataclass
class Job:
    task: str
    variables: dict[str, str]
    on_partial: Callable[[str], None] | None
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    deadline: float
    max_tokens: int


@dataclass
class GenerationStats:
    """Counters for the benchmark: no text, only numbers."""

    completed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    failures: int = 0
    timeouts: int = 0
    durations: list[float] = field(default_factory=list)
    first_partial: list[float] = field(default_factory=list)  # seconds from start to the first text


def request_body(template: Template, variables: dict[str, str], *, chat: bool, max_tokens: int,
                 temperature: float) -> dict:
    """The OpenAI-shaped request for one generation: llama-cpp-python and model servers take the same."""
    if chat:
        # A chat model ends its turn itself; a newline stop would cut a question that wraps.
        return {"messages": [{"role": "system", "content": template.system},
                             {"role": "user", "content": template.user.format(**variables)}],
                "max_tokens": max_tokens, "temperature": temperature,
                "stop": [s for s in template.stop if s != "\n"] or None}
    return {"prompt": template.completion.format(**variables), "max_tokens": max_tokens,
            "temperature": temperature, "stop": list(template.stop)}


class Interrupted(Exception):
    """The stream ended without a finish reason: the server cut it short (another request took over)."""


def stream_text(chunks: Iterable[dict], job: Job, stats: GenerationStats, stopping: threading.Event,
                *, require_finish: bool = False) -> Generation:
    """Read OpenAI-shaped chunks into the text, passing partials on; stop at the job's deadline.

    Raises what the stream raises: the caller knows which of its errors mean what.
    """
    started = time.perf_counter()
    text, tokens, finished = "", 0, False
    iterator: Iterator[dict] = iter(chunks)
    for chunk in iterator:
        # Checked per token: leaving the loop closes the stream and stops generation.
        if time.monotonic() > job.deadline or stopping.is_set():
            stats.timeouts += 1
            return Generation("", "timeout")
        choice = (chunk.get("choices") or [{}])[0]
        piece = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
        finished = finished or bool(choice.get("finish_reason"))
        if piece:
            if not text:
                stats.first_partial.append(time.perf_counter() - started)
            text += piece
            tokens += 1
            if job.on_partial is not None:
                job.loop.call_soon_threadsafe(job.on_partial, text)
    if require_finish and not finished:
        raise Interrupted()
    elapsed = time.perf_counter() - started
    stats.completed += 1
    stats.tokens += tokens
    stats.seconds += elapsed
    stats.durations.append(elapsed)
    return Generation(text.strip(), "ok")


class QueuedGenerator:
    """The Generator port over worker threads fed by a fair queue. Subclasses run one job: `_execute`."""

    def __init__(self, templates: dict[str, Template], *, max_tokens: int, summary_max_tokens: int,
                 temperature: float, summary_temperature: float, timeout_seconds: float,
                 adapter_temperature: float = 0.0):
        self.templates = templates
        self.max_tokens = {"followup": max_tokens, "followup_adapter": max_tokens, "summary": summary_max_tokens}
        self.temperature = {"followup": temperature, "followup_adapter": adapter_temperature,
                            "summary": summary_temperature}
        self.timeout = timeout_seconds
        self._queue: FairQueue[Job] = FairQueue()
        self._closing = threading.Event()  # set by close(): stop generating, take no more work
        self.stats = GenerationStats()
        #: Called (on the event loop) with (user, others ahead) when a request has to wait its turn.
        self.on_queued: Callable[[str, int], None] | None = None

    @property
    def available(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def _execute(self, job: Job) -> Generation:
        raise NotImplementedError

    def body(self, job: Job, chat: bool) -> dict:
        """The request for a job, with this task's sampling."""
        return request_body(self.templates[job.task], job.variables, chat=chat, max_tokens=job.max_tokens,
                            temperature=self.temperature.get(job.task, 0.7))

    async def generate(self, user: str, task: str, variables: dict[str, str],
                       on_partial: Callable[[str], None] | None = None) -> Generation:
        if not self.available:
            return Generation("", "unavailable")
        self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        job = Job(task, variables, on_partial, future, loop, time.monotonic() + self.timeout,
                  self.max_tokens.get(task, 48))
        self._queue.put(user, job)
        ahead = self._queue.position(user)
        if ahead and self.on_queued is not None:
            self.on_queued(user, ahead)  # a transport tells the user they are waiting, not ignored
        try:
            # The worker honours the deadline itself; this only guards against a wedged worker.
            return await asyncio.wait_for(asyncio.shield(future), self.timeout + 30)
        except asyncio.TimeoutError:
            return Generation("", "timeout")

    def _serve(self, run: Callable[[Job], Generation] | None = None) -> None:
        """A worker's loop: take the next job in fair order, run it, hand the result to its caller."""
        run = run or self._execute
        while True:
            got = self._queue.get()
            if got is None:
                return
            _user, job = got
            if self._closing.is_set():
                result = Generation("", "unavailable")
            elif time.monotonic() > job.deadline:
                self.stats.timeouts += 1
                result = Generation("", "timeout")
            else:
                result = run(job)
            if not job.loop.is_closed():
                job.loop.call_soon_threadsafe(_resolve, job.future, result)


def failed(stats: GenerationStats, status: Status, why: str) -> Generation:
    """Count a generation that gave nothing and log one line: the kind of failure, never any text."""
    if status == "timeout":
        stats.timeouts += 1
    else:
        stats.failures += 1
    log.warning("generation %s: %s", status, why)
    return Generation("", status)


def _resolve(future: asyncio.Future, result: Generation) -> None:
    if not future.done():
        future.set_result(result)
