"""Recognises bad input and commands before any flow sees a message.

Bad input (empty, huge, binary) is answered with a clear message and changes
nothing: the user's reflection stays exactly where it was.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import time

COMMAND_RE = re.compile(r"^/([A-Za-z][A-Za-z0-9_]{0,31})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?$", re.S)


@dataclass(frozen=True)
class Command:
    name: str
    args: str


def parse_command(text: str) -> Command | None:
    """'/show@SpannerBot 3' -> Command('show', '3'). Plain text -> None."""
    match = COMMAND_RE.match(text.strip())
    if not match:
        return None
    return Command(match.group(1).lower(), (match.group(2) or "").strip())


def looks_binary(text: str) -> bool:
    """NUL bytes, undecodable bytes or mostly control characters: not something a person typed."""
    if "\x00" in text:
        return True
    sample = text[:4000]
    if not sample:
        return False
    odd = sum(1 for ch in sample
              if ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in "\n\r\t"))
    return odd / len(sample) > 0.1


# Characters that show nothing on their own: category Cf (zero-width space and joiners, word joiner,
# BOM, bidi marks, soft hyphen...), combining marks with nothing to combine with, and letters that
# render blank (Hangul fillers, the braille blank). str.strip() keeps all of these.
INVISIBLE_CATEGORIES = {"Cf", "Mn", "Me", "Zs", "Zl", "Zp", "Cc"}
INVISIBLE_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}


def is_blank(text: str) -> bool:
    """True for text that would show nothing: empty, whitespace, or only zero-width or format characters."""
    return all(ch in INVISIBLE_LETTERS or unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in text)


def problem_with(text: str, limit: int) -> tuple[str, dict] | None:
    """The message key and values that explain why this text can't be taken, or None."""
    if looks_binary(text):
        return "binary", {}
    if is_blank(text):
        return "empty", {}
    if len(text) > limit:
        return "too_long", {"length": f"{len(text):,}", "limit": f"{limit:,}"}
    return None


def parse_number(args: str) -> int | None:
    token = args.strip().lstrip("#")
    return int(token) if token.isdigit() and len(token) < 10 else None


def clean(text: str) -> str:
    """Normalise line endings and strip trailing space, keeping every word."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()


class InputError(ValueError):
    """Something typed that can't be read: the message key (prompts/messages.toml) and its values."""

    def __init__(self, key: str, **values: object):
        super().__init__(key)
        self.key = key
        self.values = values


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(text: str) -> tuple[int, ...]:
    """'mon,thu' or 'weekdays' or 'daily' -> weekday numbers (Monday is 0)."""
    text = text.strip().lower()
    if text in ("daily", "every day", "everyday"):
        return tuple(range(7))
    if text == "weekdays":
        return tuple(range(5))
    days = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        if part[:3] not in DAYS:
            raise InputError("bad_day", day=part[:20])
        days.append(DAYS.index(part[:3]))
    if not days:
        raise InputError("bad_day", day=text[:20])
    return tuple(sorted(set(days)))


def parse_time(text: str) -> time:
    """'09:30' -> 09:30; anything else is an InputError naming what was typed."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise InputError("bad_time", time=text.strip()[:20])
    return time(int(match.group(1)), int(match.group(2)))
