"""The local model through llama-cpp-python: one model, one worker thread, a fair queue.

Implements the engine's Generator port. Generation never runs on the event
loop: callers await a future that the worker thread completes. A base model
(no chat template, like the default Gemma 3 270M) gets the few-shot completion
template from prompts/templates; an instruct model with a chat template gets
the system/user template through its own chat format. A missing model file, a
failure or a timeout comes back as a status, never as an exception, so the
conversation goes on with curated lines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bot.engine.ports import Generation
from bot.engine.prompt_data import Template

from bot.cpu_turns import CpuTurns

from .fair_queue import FairQueue

log = logging.getLogger(__name__)


@dataclass
class _Job:
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


class LlamaGenerator:
    """Generator port over llama.cpp. Call start() once; close() at shutdown."""

    def __init__(self, model_path: Path | None, templates: dict[str, Template], *, threads: int,
                 context_tokens: int = 2048, max_tokens: int = 48, summary_max_tokens: int = 80,
                 temperature: float = 0.7, summary_temperature: float = 0.3,
                 timeout_seconds: float = 8.0, mode: str = "auto",
                 seed: int = 1234, llama_factory: Callable[..., object] | None = None,
                 turns: CpuTurns | None = None, lora_path: Path | None = None,
                 adapter_temperature: float = 0.0):
        self.model_path = Path(model_path) if model_path else None
        self.templates = templates
        self.threads = threads
        self.context_tokens = context_tokens
        self.max_tokens = {"followup": max_tokens, "followup_adapter": max_tokens, "summary": summary_max_tokens}
        self.temperature = {"followup": temperature, "followup_adapter": adapter_temperature,
                            "summary": summary_temperature}
        # Spanner's follow-up adapter, applied over the model at load (checked by the caller).
        self.lora_path = Path(lora_path) if lora_path else None
        self.timeout = timeout_seconds
        self.mode = mode
        self.seed = seed
        self._factory = llama_factory
        self.turns = turns or CpuTurns()  # shared with the transcriber: one heavy job at a time
        self._queue: FairQueue[_Job] = FairQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = threading.Event()  # set by close(): stop generating, take no more work
        self._llm = None
        self._uses_chat = False
        self._load_error: str | None = None
        self.stats = GenerationStats()
        #: Called (on the event loop) with (user, others ahead) when a request has to wait its turn.
        self.on_queued: Callable[[str, int], None] | None = None

    # ----- lifecycle ----------------------------------------------------------

    @property
    def available(self) -> bool:
        if self.model_path is None or not self.model_path.is_file():
            return False
        return self._load_error is None

    @property
    def uses_chat_template(self) -> bool:
        self._ready.wait()
        return self._uses_chat

    def start(self) -> None:
        """Start the worker thread; it loads the model first. Callers wait_ready() before serving users."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spanner-llm", daemon=True)
            self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def close(self) -> None:
        # Stop at the next token and drop what is still queued, so the model is freed only once idle.
        self._closing.set()
        self._queue.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                # Still decoding queued work: freeing the model under it would crash the process.
                # The daemon thread ends with the process; the model goes with it.
                log.warning("model worker still busy at close; leaving the model to process exit")
                return
        llm, self._llm = self._llm, None
        if llm is not None and hasattr(llm, "close"):
            llm.close()

    def _load(self) -> None:
        if not self.available:
            self._load_error = "missing"
            log.warning("model file not found; using curated questions only")
            return
        try:
            if self._factory is not None:
                self._llm = self._factory(str(self.model_path))
            else:
                from llama_cpp import Llama
                _silence_llama_cpp()
                self._llm = Llama(model_path=str(self.model_path), n_ctx=self.context_tokens,
                                  n_threads=self.threads, n_threads_batch=self.threads,
                                  n_batch=512, seed=self.seed, verbose=False,
                                  lora_path=str(self.lora_path) if self.lora_path else None)
            template = (getattr(self._llm, "metadata", None) or {}).get("tokenizer.chat_template")
            self._uses_chat = self.mode == "chat" or (self.mode == "auto" and bool(template))
        except Exception as exc:
            self._load_error = type(exc).__name__
            log.warning("model failed to load (%s); using curated questions only", type(exc).__name__)

    # ----- the port -----------------------------------------------------------

    async def generate(self, user: str, task: str, variables: dict[str, str],
                       on_partial: Callable[[str], None] | None = None) -> Generation:
        if not self.available:
            return Generation("", "unavailable")
        if self._thread is None:
            self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        job = _Job(task, variables, on_partial, future, loop, time.monotonic() + self.timeout,
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

    # ----- the worker ---------------------------------------------------------

    def _run(self) -> None:
        _lower_priority()
        self._load()
        self._ready.set()
        while True:
            got = self._queue.get()
            if got is None:
                return
            _user, job = got
            if self._closing.is_set():
                result = Generation("", "unavailable")
            else:
                with self.turns.turn():
                    result = self._execute(job)
            if not job.loop.is_closed():
                job.loop.call_soon_threadsafe(_resolve, job.future, result)

    def _execute(self, job: _Job) -> Generation:
        if self._llm is None:
            return Generation("", "unavailable")
        if time.monotonic() > job.deadline:
            self.stats.timeouts += 1
            return Generation("", "timeout")
        template = self.templates[job.task]
        started = time.perf_counter()
        timed_out = False
        try:
            # The adapter learnt the completion layout, so its task never goes through a chat template.
            if self._uses_chat and job.task != "followup_adapter":
                stream = self._llm.create_chat_completion(
                    messages=[{"role": "system", "content": template.system},
                              {"role": "user", "content": template.user.format(**job.variables)}],
                    max_tokens=job.max_tokens, temperature=self.temperature.get(job.task, 0.7), stream=True,
                    stop=[s for s in template.stop if s != "\n"] or None)
            else:
                stream = self._llm.create_completion(
                    template.completion.format(**job.variables), max_tokens=job.max_tokens,
                    temperature=self.temperature.get(job.task, 0.7), stop=list(template.stop), stream=True)
            text, tokens = "", 0
            for chunk in stream:
                # Checked per token: leaving the loop closes the stream and stops generation.
                if time.monotonic() > job.deadline or self._closing.is_set():
                    timed_out = True
                    break
                choice = chunk["choices"][0]
                piece = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
                if piece:
                    text += piece
                    tokens += 1
                    if job.on_partial is not None:
                        job.loop.call_soon_threadsafe(job.on_partial, text)
            close = getattr(stream, "close", None)
            if close:
                close()
        except Exception as exc:
            self.stats.failures += 1
            log.warning("generation failed: %s", type(exc).__name__)
            return Generation("", "failed")
        elapsed = time.perf_counter() - started
        if timed_out:
            self.stats.timeouts += 1
            return Generation("", "timeout")
        self.stats.completed += 1
        self.stats.tokens += tokens
        self.stats.seconds += elapsed
        self.stats.durations.append(elapsed)
        return Generation(text.strip(), "ok")


_QUIET_CALLBACK = None


def _lower_priority() -> None:
    """Run generation (and the compute threads llama.cpp starts from here) at a lower priority.

    On a 2-core host the model would otherwise take every core, and the event loop that
    answers other users' commands would wait behind it. Linux applies nice per thread.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (OSError, AttributeError):
        pass


def _silence_llama_cpp() -> None:
    """llama.cpp prints load-time notices straight to stderr, which would land in the user's chat."""
    global _QUIET_CALLBACK
    if _QUIET_CALLBACK is None:
        import ctypes

        import llama_cpp

        @llama_cpp.llama_log_callback
        def _discard(_level, _text, _user_data):
            return None

        _QUIET_CALLBACK = _discard  # keep a reference: ctypes callbacks must outlive their use
        llama_cpp.llama_log_set(_QUIET_CALLBACK, ctypes.c_void_p(0))


def _resolve(future: asyncio.Future, result: Generation) -> None:
    if not future.done():
        future.set_result(result)
