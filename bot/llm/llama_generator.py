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

import logging
import os
import threading
from pathlib import Path
from typing import Callable

from bot.engine.ports import Generation
from bot.engine.prompt_data import Template

from bot.cpu_turns import CpuTurns

from .generation import GenerationStats, Job, QueuedGenerator, failed, stream_text

__all__ = ["GenerationStats", "LlamaGenerator"]

log = logging.getLogger(__name__)

#: The nice value of the generation thread (and of llama.cpp's compute threads started from it).
WORKER_NICE = 10


class LlamaGenerator(QueuedGenerator):
    """Generator port over llama.cpp. Call start() once; close() at shutdown."""

    def __init__(self, model_path: Path | None, templates: dict[str, Template], *, threads: int,
                 context_tokens: int = 2048, max_tokens: int = 48, summary_max_tokens: int = 80,
                 temperature: float = 0.7, summary_temperature: float = 0.3,
                 timeout_seconds: float = 8.0, mode: str = "auto",
                 seed: int = 1234, llama_factory: Callable[..., object] | None = None,
                 turns: CpuTurns | None = None, lora_path: Path | None = None,
                 adapter_temperature: float = 0.0):
        super().__init__(templates, max_tokens=max_tokens, summary_max_tokens=summary_max_tokens,
                         temperature=temperature, summary_temperature=summary_temperature,
                         timeout_seconds=timeout_seconds, adapter_temperature=adapter_temperature)
        self.model_path = Path(model_path) if model_path else None
        self.threads = threads
        self.context_tokens = context_tokens
        # Spanner's follow-up adapter, applied over the model at load (checked by the caller).
        self.lora_path = Path(lora_path) if lora_path else None
        self.mode = mode
        self.seed = seed
        self._factory = llama_factory
        self.turns = turns or CpuTurns()  # shared with the transcriber: one heavy job at a time
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._llm = None
        self._uses_chat = False
        self._load_error: str | None = None

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

    # ----- the worker ---------------------------------------------------------

    def _run(self) -> None:
        _lower_priority()
        self._load()
        self._ready.set()
        self._serve(self._take_turn)

    def _take_turn(self, job: Job) -> Generation:
        with self.turns.turn():
            return self._execute(job)

    def _execute(self, job: Job) -> Generation:
        if self._llm is None:
            return Generation("", "unavailable")
        # The adapter learnt the completion layout, so its task never goes through a chat template.
        chat = self._uses_chat and job.task != "followup_adapter"
        body = self.body(job, chat)
        try:
            stream = (self._llm.create_chat_completion(**body, stream=True) if chat
                      else self._llm.create_completion(**body, stream=True))
            try:
                return stream_text(stream, job, self.stats, self._closing)
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
        except Exception as exc:
            return failed(self.stats, "failed", type(exc).__name__)


_QUIET_CALLBACK = None


def _lower_priority() -> None:
    """Run generation (and the compute threads llama.cpp starts from here) at a lower priority.

    On a 2-core host the model would otherwise take every core, and the event loop that
    answers other users' commands would wait behind it. Linux applies nice per thread.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
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
