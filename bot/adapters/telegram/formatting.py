"""Shaping replies for Telegram: 4,096-character parts split at paragraphs, buttons, no stray links.

Everything is sent as plain text (no parse mode), so nothing a user wrote can
break formatting, and link previews are always off.
"""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.engine.guard import URL_RE

LIMIT = 4096
BUTTONS_PER_ROW = 3


def split_text(text: str, limit: int = LIMIT) -> list[str]:
    """Split at paragraph breaks, then line breaks, then spaces; cut hard only inside a giant word."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), -1)
        if cut < limit // 4:
            cut = window.rfind("\n")
        if cut < limit // 4:
            cut = window.rfind(" ")
        if cut < limit // 4:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts or [""]


def strip_urls(text: str, allowed: tuple[str, ...] = ()) -> str:
    """Remove links a model wrote, unless they belong to a cited card."""
    def keep(match: re.Match) -> str:
        return match.group(0) if any(match.group(0) in a for a in allowed) else "[link removed]"
    return re.sub(r"\S*" + URL_RE.pattern + r"\S*", keep, text, flags=re.I)


def keyboard(choices: list[list[str]]) -> InlineKeyboardMarkup | None:
    """Inline buttons from [label, data] pairs, a few to a row."""
    if not choices:
        return None
    buttons = [InlineKeyboardButton(label[:64], callback_data=data[:64]) for label, data in choices]
    return InlineKeyboardMarkup([buttons[i:i + BUTTONS_PER_ROW] for i in range(0, len(buttons), BUTTONS_PER_ROW)])
