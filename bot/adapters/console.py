"""The console chat: the embedded default transport, for people at a terminal and for scripted sessions.

Interactive, it prompts with "you> ". With a pipe on stdin it reads one
message per line and stops at end of input, so a whole session can be
scripted. Buttons are printed as numbered options; typing the number or the
label presses it, as tapping a button would in Telegram. The buttons of every
message in the last answer stay pressable, so a notice never loses its own.
`/voice PATH` sends an audio file as a voice note would arrive on Telegram (the
file is read into memory, never copied, and left where it is).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import BinaryIO, TextIO

from bot.engine.engine import Engine
from bot.engine.records import AudioClip, AudioUnavailable, Choice, Event, Reply

VOICE_LINE = re.compile(r"^/voice(?:@\S+)?\s+(.+)$", re.I)


def render(reply: Reply, first: int = 1) -> str:
    """A reply as the terminal shows it; its buttons numbered from `first`."""
    lines = [f"spanner> {reply.text}".replace("\n", "\n         ")]
    if reply.choices:
        lines.append("         " + "  ".join(f"[{i}] {c.label}" for i, c in enumerate(reply.choices, first)))
    return "\n".join(lines)


def _choice_for(line: str, choices: tuple[Choice, ...]) -> str | None:
    token = line.strip()
    if token.isdigit() and 1 <= int(token) <= len(choices):
        return choices[int(token) - 1].data
    for choice in reversed(choices):  # the same label twice: the newest message's button
        if token.lower() == choice.label.lower():
            return choice.data
    return None


class ConsoleChat:
    """Feeds lines to the engine as one user and prints what it says back."""

    def __init__(self, engine: Engine, user: str, display_name: str, out: TextIO,
                 files_dir: Path | None = None):
        self.engine = engine
        self.user = f"console:{user}"
        self.display_name = display_name
        self.out = out
        # Files the user asked for (an export) go where they ran the command, never into the data dir.
        self.files_dir = Path(files_dir) if files_dir else Path.cwd()
        self._choices: tuple[Choice, ...] = ()

    async def send(self, line: str) -> list[Reply]:
        choice = _choice_for(line, self._choices) if self._choices else None
        voice = VOICE_LINE.match(line.strip()) if not choice else None
        if voice:
            event = Event(user=self.user, display_name=self.display_name, kind="voice",
                          audio=audio_file(voice.group(1).strip().strip("'\"")))
        else:
            event = Event(user=self.user, display_name=self.display_name,
                          text="" if choice else line, choice=choice)
        replies = await self.engine.handle(event)
        # Every button of this answer stays pressable, numbered across the messages (as in a
        # Telegram chat, where a notice keeps its buttons beside the greeting that follows it).
        choices: list[Choice] = []
        for reply in replies:
            print(render(reply, len(choices) + 1), file=self.out, flush=True)
            choices += reply.choices
            if reply.attachment is not None:
                path = self._save(reply.attachment)
                print(f"         (saved to {path})", file=self.out, flush=True)
        if replies:
            self._choices = tuple(choices)
        return replies

    def _save(self, attachment) -> Path:
        target = self.files_dir / attachment.name
        n = 1
        while target.exists():
            target = self.files_dir / f"{Path(attachment.name).stem}-{n}{Path(attachment.name).suffix}"
            n += 1
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # readable by its owner only
        with os.fdopen(fd, "wb") as fh:
            fh.write(attachment.data)
        return target

    async def greet(self) -> None:
        await self.send("/start")


def audio_file(path: str) -> AudioClip:
    """An audio file on this computer as a clip; its bytes are read only when it is transcribed."""
    target = Path(path).expanduser()

    async def fetch() -> bytes:
        try:
            return await asyncio.to_thread(target.read_bytes)
        except OSError:
            raise AudioUnavailable("missing") from None
    size = target.stat().st_size if target.is_file() else None
    return AudioClip(fetch=fetch, size=size)


def _decode(raw: bytes) -> str:
    # Undecodable bytes become U+FFFD, which the engine recognises as binary input.
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


async def run_piped(chat: ConsoleChat, stream: BinaryIO) -> None:
    await chat.greet()
    for raw in stream:
        await chat.send(_decode(raw))


async def run_interactive(chat: ConsoleChat, stdin: TextIO) -> None:
    await chat.greet()
    loop = asyncio.get_running_loop()
    while True:
        try:
            line = await loop.run_in_executor(None, _read_line)
        except (EOFError, KeyboardInterrupt):
            print("", file=chat.out)
            return
        if line.strip().lower() in ("/quit", "/exit"):
            return
        await chat.send(line)


def _read_line() -> str:
    return input("you> ")


def run_console(engine: Engine, user: str, display_name: str = "") -> None:
    chat = ConsoleChat(engine, user, display_name or user, sys.stdout)
    if sys.stdin.isatty():
        asyncio.run(run_interactive(chat, sys.stdin))
    else:
        asyncio.run(run_piped(chat, sys.stdin.buffer))
