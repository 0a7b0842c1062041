"""Speech to text on the host: faster-whisper (CTranslate2, int8) in one worker thread.

Implements the engine's Transcriber port. Audio arrives as bytes in memory and
is decoded by PyAV (its wheels bundle FFmpeg: OGG/Opus from Telegram, WAV,
MP3, M4A), so no audio file is ever written; the bytes are dropped as soon as
the job ends. The model is read from a local CTranslate2 folder only (the hub
is switched off in bot/__init__.py) and loaded at the first voice note, in the
worker thread at a lower priority, so its compute threads inherit that
priority and the event loop keeps answering everyone else. Each job holds a
turn of the CpuTurns it shares with the language model. Failures come back as
a status, never as an exception, and never with what was said.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bot.cpu_turns import CpuTurns
from bot.engine.ports import Transcript
from bot.llm.fair_queue import FairQueue
from bot.llm.llama_generator import _lower_priority

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper listens at


@dataclass
class _Job:
    audio: bytes | None
    max_seconds: float
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class TranscriptionStats:
    """Numbers for the benchmark: audio seconds in, compute seconds spent. No text."""

    clips: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    load_seconds: float = 0.0
    durations: list[float] = field(default_factory=list)


class WhisperTranscriber:
    """Transcriber port over faster-whisper. close() at shutdown."""

    def __init__(self, model_dir: Path, *, threads: int = 2, language: str | None = "en", beam_size: int = 5,
                 hotwords: str = "", turns: CpuTurns | None = None):
        self.model_dir = Path(model_dir)
        self.threads = threads
        self.language = language or None
        self.beam_size = beam_size
        self.hotwords = hotwords.strip() or None
        self.turns = turns or CpuTurns()
        self._queue: FairQueue[_Job] = FairQueue()
        self._thread: threading.Thread | None = None
        self._model = None
        self._load_error: str | None = None
        self._busy = False
        self.stats = TranscriptionStats()

    @property
    def available(self) -> bool:
        return (self.model_dir / "model.bin").is_file() and self._load_error is None

    def close(self) -> None:
        """Stop the worker (the model stays loaded: a test session reuses one transcriber)."""
        self._queue.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._thread, self._queue = None, FairQueue()

    # ----- the port -----------------------------------------------------------

    async def transcribe(self, user: str, audio: bytes, max_seconds: float,
                         on_wait: Callable[[int], None] | None = None) -> Transcript:
        if not self.available:
            return Transcript("", "unavailable")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spanner-voice", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        job = _Job(audio, max_seconds, loop.create_future(), loop)
        # Others queued for the transcriber, plus the job on the cores now (ours mid-transcription holds a turn).
        ahead = self._queue.position(user) + max(self.turns.busy(), 1 if self._busy else 0)
        self._queue.put(user, job)
        if ahead and on_wait is not None:
            on_wait(ahead)  # the transport tells them they wait, instead of leaving them in silence
        return await asyncio.shield(job.future)

    def transcribe_now(self, audio: bytes, max_seconds: float = 3600.0) -> Transcript:
        """The same work on the calling thread (the benchmark), under the same turns."""
        self._ensure_model()
        return self._execute(_Job(audio, max_seconds, None, None))  # type: ignore[arg-type]

    # ----- the worker ---------------------------------------------------------

    def _ensure_model(self) -> None:
        if self._model is not None or self._load_error is not None:
            return
        started = time.perf_counter()
        try:
            from faster_whisper import WhisperModel  # imported late: its libraries load only for voice

            # A local folder only: faster-whisper would otherwise take a name as a hub id to download.
            self._model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                       cpu_threads=self.threads, num_workers=1, local_files_only=True)
        except Exception as exc:
            self._load_error = type(exc).__name__
            log.warning("voice model failed to load (%s); voice notes are off", type(exc).__name__)
        self.stats.load_seconds = time.perf_counter() - started

    def _run(self) -> None:
        _lower_priority()
        while True:
            got = self._queue.get()
            if got is None:
                return
            _user, job = got
            self._busy = True
            try:
                self._ensure_model()
                result = self._execute(job)
            finally:
                self._busy = False
            job.audio = None  # the only copy of the audio goes now
            if not job.loop.is_closed():
                job.loop.call_soon_threadsafe(_resolve, job.future, result)

    def _execute(self, job: _Job) -> Transcript:
        if self._model is None:
            return Transcript("", "unavailable")
        try:
            from faster_whisper.audio import decode_audio

            samples = decode_audio(io.BytesIO(job.audio or b""), sampling_rate=SAMPLE_RATE)
        except Exception as exc:  # PyAV's errors for anything it cannot read: not a crash, a message
            log.info("audio could not be decoded: %s", type(exc).__name__)
            return Transcript("", "undecodable")
        seconds = len(samples) / SAMPLE_RATE
        if seconds == 0:
            return Transcript("", "undecodable")
        if seconds > job.max_seconds:
            return Transcript("", "too_long", seconds)
        started = time.perf_counter()
        try:
            with self.turns.turn():
                segments, _info = self._model.transcribe(
                    samples, language=self.language, beam_size=self.beam_size, vad_filter=True,
                    condition_on_previous_text=False, hotwords=self.hotwords)
                text = " ".join(s.text.strip() for s in segments).strip()  # the generator runs the model
        except Exception as exc:
            log.warning("transcription failed: %s", type(exc).__name__)
            return Transcript("", "failed", seconds)
        elapsed = time.perf_counter() - started
        self.stats.clips += 1
        self.stats.audio_seconds += seconds
        self.stats.seconds += elapsed
        self.stats.durations.append(elapsed)
        return Transcript(text, "ok" if text else "empty", seconds)


def _resolve(future: asyncio.Future, result: Transcript) -> None:
    if not future.done():
        future.set_result(result)
