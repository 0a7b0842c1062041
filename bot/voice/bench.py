"""`spanner bench --voice`: transcription numbers on this host, for tiny.en and base. Not a test.

For each packaged Whisper model, in a process of its own (so its peak memory is
its own): the real-time factor (compute seconds per second of audio, 2 cores),
the word error against the committed fixture clips (tests/fixtures/voice), the
same with faster-whisper's `hotwords` set to the care vocabulary (measured
before anyone switches it on), and the peak RSS of a whole Spanner app that
has transcribed them. Then, with the language model loaded and kept busy by
another person, how soon a voice message gets its first visible reply and its
transcript, and how soon a third person's command is answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from bot.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
CLIPS_DIR = ROOT / "tests" / "fixtures" / "voice"


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_error(reference: str, heard: str) -> tuple[int, int]:
    """(word edits, reference words): the Levenshtein distance over words."""
    ref, hyp = _words(reference), _words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def _clips() -> tuple[list[dict], str]:
    data = tomllib.loads((CLIPS_DIR / "clips.toml").read_text(encoding="utf-8"))
    return data["clip"], data["hotwords"]


def measure_model(config_path: str, name: str) -> dict:
    """In a child process: one model's speed, word error (with and without hotwords) and peak RSS."""
    from bot.compose import build_app
    from bot.engine.records import AudioClip, Event
    from bot.voice.whisper_transcriber import WhisperTranscriber

    config = load_config(config_path, overrides={"voice.model": name})
    app = build_app(config)
    try:
        transcriber = app.transcriber
        clips, hotwords = _clips()
        audio = {c["name"]: (CLIPS_DIR / f"{c['name']}.ogg").read_bytes() for c in clips}
        transcriber.transcribe_now(audio[clips[0]["name"]])  # load and warm up: not counted
        result: dict = {"model": name, "load_s": transcriber.stats.load_seconds}
        for label, t in (("plain", transcriber),
                         ("hotwords", WhisperTranscriber(transcriber.model_dir, threads=config.voice.threads,
                                                         hotwords=hotwords, turns=transcriber.turns))):
            t._model = transcriber._model  # the same loaded model, only the hotwords differ
            edits = words = other_edits = other_words = 0
            audio_s = compute_s = 0.0
            for clip in clips:
                started = time.perf_counter()
                heard = t.transcribe_now(audio[clip["name"]])
                compute_s += time.perf_counter() - started
                audio_s += heard.seconds
                e, n = word_error(clip["text"], heard.text)
                edits, words = edits + e, words + n
                if not set(_words(hotwords)) & set(_words(clip["text"])):  # clips with none of the words
                    other_edits, other_words = other_edits + e, other_words + n
            result[label] = {"rtf": compute_s / audio_s, "wer": edits / words, "audio_s": audio_s,
                             "wer_other": other_edits / max(other_words, 1)}

        # Whisper works on 30-second windows, so a 5-second clip pays for a whole window: time one
        # recording of every clip in a row too (what a minute-long voice note costs per second).
        joined = joined_wav(audio.values())
        started = time.perf_counter()
        heard = transcriber.transcribe_now(joined)
        result["joined"] = {"rtf": (time.perf_counter() - started) / heard.seconds, "audio_s": heard.seconds}

        async def through_the_engine() -> None:  # as a person would: /voice, then Use it
            for i, clip in enumerate(clips):
                data = audio[clip["name"]]

                async def fetch(data=data) -> bytes:
                    return data
                await app.engine.handle(Event(user="console:bench", kind="voice", id=10 + i,
                                              audio=AudioClip(fetch=fetch, size=len(data))))
        asyncio.run(through_the_engine())
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return result
    finally:
        app.close()


def joined_wav(clips) -> bytes:
    """Encoded clips decoded and joined into one 16 kHz mono WAV (a longer recording, for timing)."""
    import io
    import wave

    import numpy as np
    from faster_whisper.audio import decode_audio

    samples = np.concatenate([decode_audio(io.BytesIO(data)) for data in clips])
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return out.getvalue()


def measure_busy(config_path: str) -> dict:
    """In a child process: the language model busy with one person, a voice note from another, a command
    from a third. Times are from the moment each was sent."""
    from bot.compose import build_app
    from bot.engine.context import current_partial_sink
    from bot.engine.records import AudioClip, Event

    config = load_config(config_path, overrides={"reflection.followup_strategy": "model"})
    app = build_app(config)
    try:
        data = (CLIPS_DIR / "practice.ogg").read_bytes()
        app.transcriber.transcribe_now(data)  # loaded before timing, as in a bot that has heard one already

        async def run() -> dict:
            stop = asyncio.Event()

            async def keep_model_busy() -> None:
                while not stop.is_set():
                    await app.generator.generate("console:busy", "followup", {
                        "meeting": "Discharge planning", "question": "What happened?",
                        "answer": "We argued about discharge dates for an hour."})
            busy = asyncio.create_task(keep_model_busy())
            await asyncio.sleep(1.0)
            seen: list[tuple[float, str]] = []
            started = time.perf_counter()
            token = current_partial_sink.set(lambda text: seen.append((time.perf_counter() - started, text)))

            async def fetch() -> bytes:
                return data
            voice = asyncio.create_task(app.engine.handle(Event(user="console:voice", kind="voice", id=1,
                                                                audio=AudioClip(fetch=fetch, size=len(data)))))
            current_partial_sink.reset(token)
            await asyncio.sleep(0.2)
            cmd_started = time.perf_counter()
            await app.engine.handle(Event(user="console:other", text="/help", id=2))
            command_s = time.perf_counter() - cmd_started
            replies = await voice
            transcript_s = time.perf_counter() - started
            stop.set()
            await busy
            return {"first_visible_s": seen[0][0] if seen else None,
                    "told_waiting": any("computer is free" in text for _, text in seen),
                    "transcript_s": transcript_s, "transcribed": any("heard" in r.text for r in replies),
                    "other_command_s": command_s}
        return asyncio.run(run())
    finally:
        app.close()


def _child(config_path: Path, what: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bot.voice.bench", str(config_path), what],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"voice bench ({what}) failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_voice_bench(base: Config) -> int:
    from bot.bench import line
    from bot.compose import model_path_for
    from bot.voice.model_files import MODELS, assemble

    load = os.getloadavg()[0]
    print(f"Spanner voice benchmark: {base.voice.threads} threads, {os.cpu_count()} cores, "
          f"load {load:.2f} at start", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        for name in MODELS:
            assemble(data, name)
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(f'[paths]\ndata_dir = "{data}"\n\n[llm]\nmodel_path = "{model_path_for(base)}"\n'
                       f"threads = {base.llm.threads}\n\n[retrieval]\nenabled = true\n\n[voice]\n"
                       f"threads = {base.voice.threads}\nbeam_size = {base.voice.beam_size}\n")
        for name in MODELS:
            r = _child(cfg, name)
            line(f"{name}: real-time factor, 5-second clips (2 cores)", f"{r['plain']['rtf']:.3f}",
                 "(each pays for a 30-second window)")
            tiny = name == "tiny.en"
            line(f"{name}: real-time factor, the clips as one recording", f"{r['joined']['rtf']:.3f}",
                 f"({r['joined']['audio_s']:.0f} s of speech)" + ("; target <= 0.1" if tiny else ""),
                 r["joined"]["rtf"] <= 0.1 if tiny else None)
            line(f"{name}: word error on the fixture clips", f"{100 * r['plain']['wer']:.1f} %",
                 f"({r['plain']['audio_s']:.0f} s of speech)")
            line(f"{name}: with care hotwords: word error / RTF",
                 f"{100 * r['hotwords']['wer']:.1f} % / {r['hotwords']['rtf']:.3f}")
            line(f"{name}:   clips with no hotword: without / with",
                 f"{100 * r['plain']['wer_other']:.1f} % / {100 * r['hotwords']['wer_other']:.1f} %",
                 "(the list came from these clips: it must not hurt the others)")
            line(f"{name}: model load", f"{r['load_s']:.2f} s")
            line(f"{name}: peak RSS, Spanner with voice loaded", f"{r['peak_rss_mb']:.0f} MB")
        busy = _child(cfg, "busy")
        first = busy["first_visible_s"]
        line("voice note while the model is busy: first visible", "none" if first is None else f"{first:.3f} s",
             "target < 1 s", first is not None and first < 1)
        line("  told they wait", str(busy["told_waiting"]))
        line("  transcript shown after", f"{busy['transcript_s']:.2f} s", "", busy["transcribed"])
        line("  another person's /help meanwhile", f"{busy['other_command_s']:.3f} s", "target < 1 s",
             busy["other_command_s"] < 1)
    print(f"load {os.getloadavg()[0]:.2f} at the end (numbers taken above ~1.5 are slower than an idle host)")
    return 0


if __name__ == "__main__":
    config_file, what = sys.argv[1], sys.argv[2]
    result = measure_busy(config_file) if what == "busy" else measure_model(config_file, what)
    print(json.dumps(result))
