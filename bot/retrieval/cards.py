"""Literature cards in knowledge/: Markdown with front matter, our own words, full citations.

Front matter keys: title, citation (full reference), themes (list of short
tags), idea (one sentence offered to a user), cues (short sentences in a
practitioner's words describing meetings where the idea helps). The body is a
short summary in our own words, split into chunks at blank lines for retrieval.

What a person writes after a meeting is concrete ("finance held the purse
strings"); a card's summary is abstract. Matching their sentences against the
cues, which speak their language, finds the card that fits far better than
matching against the summary. Signals (regular expressions for the phrases
that show an idea applies, like "people say" for organisational stories) must
agree too: a card none of whose signals appears is never offered.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import frontmatter

REQUIRED = ("title", "citation", "themes", "idea", "cues", "signals")
MIN_CUES = 3


class CardError(Exception):
    """A card is malformed: the message names the file and the fix."""


@dataclass(frozen=True)
class Card:
    card_id: str
    title: str
    citation: str
    themes: tuple[str, ...]
    idea: str
    body: str
    path: Path
    cues: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()  # regular expressions: words in an answer that show the idea applies

    def chunks(self) -> list[str]:
        """The idea, then each paragraph, each prefixed by the title for context."""
        paragraphs = [p.strip() for p in self.body.split("\n\n") if p.strip()]
        return [f"{self.title}. {self.idea}"] + [f"{self.title}. {p}" for p in paragraphs]

    def digest(self) -> str:
        raw = "\x1f".join([self.title, self.citation, ",".join(self.themes), self.idea, self.body,
                           "\x1e".join(self.cues), "\x1e".join(self.signals)])
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def load_card(path: Path) -> Card:
    try:
        post = frontmatter.load(str(path))
    except Exception as exc:
        raise CardError(f"{path}: front matter could not be read ({type(exc).__name__}); "
                        "fix: start the file with --- then key: value lines and ---") from None
    missing = [k for k in REQUIRED if not post.metadata.get(k)]
    if missing:
        raise CardError(f"{path}: front matter lacks {', '.join(missing)}; fix: add {missing[0]}: ...")
    themes = post.metadata["themes"]
    if isinstance(themes, str):
        themes = [t.strip() for t in themes.split(",")]
    cues = post.metadata["cues"]
    if not isinstance(cues, list) or len([c for c in cues if str(c).strip()]) < MIN_CUES:
        raise CardError(f"{path}: cues must be a list of at least {MIN_CUES} sentences; fix: add cues: "
                        "with one '- \"...\"' line per situation where the idea helps")
    signals = post.metadata["signals"]
    if not isinstance(signals, list) or not signals:
        raise CardError(f"{path}: signals must be a list of regular expressions; fix: add signals: with one "
                        "'- ...' line per phrase that shows the idea applies")
    for pattern in signals:
        try:
            re.compile(str(pattern), re.I)
        except re.error as exc:
            raise CardError(f"{path}: signal {pattern!r} is not a valid regular expression ({exc}); "
                            "fix: correct it (write single-quoted YAML strings so backslashes stay as they are)") from None
    if not post.content.strip():
        raise CardError(f"{path}: the card has no summary text; fix: write a short summary under the front matter")
    return Card(card_id=path.stem, title=str(post.metadata["title"]).strip(),
                citation=" ".join(str(post.metadata["citation"]).split()),
                themes=tuple(str(t).strip().lower() for t in themes if str(t).strip()),
                idea=" ".join(str(post.metadata["idea"]).split()), body=post.content.strip(), path=path,
                cues=tuple(" ".join(str(c).split()) for c in cues if str(c).strip()),
                signals=tuple(str(p) for p in signals))


def load_cards(directory: Path) -> list[Card]:
    """Every card in the folder. A missing folder or one without cards is an error, never "no cards":
    ingest removes what the folder no longer holds, so a mistyped path would empty the index."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CardError(f"{directory}: no such folder, so there are no cards to index (the index is left as it "
                        "is); fix: set paths.knowledge_dir to the folder holding the literature cards")
    cards = [load_card(p) for p in sorted(directory.glob("*.md")) if p.name.lower() != "readme.md"]
    if not cards:
        raise CardError(f"{directory}: holds no cards (*.md), so the index is left as it is; fix: set "
                        "paths.knowledge_dir to the folder holding the literature cards")
    return cards
