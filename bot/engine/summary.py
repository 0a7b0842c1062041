"""The summary of a reflection, built from the person's own words: faithful by construction.

Each answered step contributes its own whole sentences (or, for a long sentence, its whole
clauses) under the step's title, in the protocol's order: the meeting, what each party wanted,
the approach, where power sat, the local story, the next step, and whatever else the protocol
asks. The answer to a step's follow-up question is read too. Anything the person said about their
own part ("I lost my temper", "I should have asked") gets a line of its own. Nothing is cut
mid-word and no word is added but the titles, which are ours and say so by their place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .wording import clauses, sentences, words

# A step's line stays short enough to read on a phone: whole sentences up to this many words.
LINE_WORDS = 35
FOLLOWUP_WORDS = 25
OWN_PART = re.compile(
    r"\b(i|i'm|i've|i'd|my)\b.{0,40}\b(felt|feel|think|thought|realised|realized|noticed|should|could|"
    r"wish|learned|learnt|lost|kept|pushed|held back|backed down|stayed quiet|my part|my role|regret|"
    r"didn't|wasn't|got it wrong|went in|came across|over-?stepped|struggled|avoided|next time)\b", re.I)


@dataclass(frozen=True)
class Part:
    """One answered step: its title, its answer, the follow-up answer, and its options if any."""

    title: str
    answer: str
    followup_answer: str = ""
    options: tuple[str, ...] = ()


def _n(text: str) -> int:
    return len(words(text))


def _end(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?" else text + "."


def whole_sentences(text: str, limit: int) -> str:
    """As many whole sentences as fit in `limit` words; a first sentence too long gives whole clauses."""
    picked: list[str] = []
    count = 0
    for sentence in sentences(text):
        n = _n(sentence)
        if picked and count + n > limit:
            break
        if not picked and n > limit:
            parts: list[str] = []
            for clause in clauses(sentence):
                if parts and count + _n(clause) > limit:
                    break
                parts.append(clause)
                count += _n(clause)
            return _end("; ".join(parts))
        picked.append(_end(sentence))
        count += n
    return " ".join(picked)


def own_part(parts: list[Part], used: str) -> str:
    """A sentence in which the person speaks about their own part, not already in the summary."""
    for part in parts:
        for text in (part.answer, part.followup_answer):
            for sentence in sentences(text):
                if OWN_PART.search(sentence) and sentence not in used and _n(sentence) <= LINE_WORDS:
                    return _end(sentence)
    return ""


def build_summary(parts: list[Part], own_part_title: str) -> str:
    """The summary, one line per answered step, in the person's words."""
    lines: list[str] = []
    for part in parts:
        if part.answer in part.options:
            line = part.answer + "."
            if part.followup_answer.strip():
                line += " " + whole_sentences(part.followup_answer, FOLLOWUP_WORDS)
        else:
            line = whole_sentences(part.answer, LINE_WORDS)
            if part.followup_answer.strip():
                line += " " + whole_sentences(part.followup_answer, FOLLOWUP_WORDS)
        if line.strip(". "):
            lines.append(f"{part.title}: {line.strip()}")
    body = "\n".join(lines)
    mine = own_part(parts, body)
    if mine:
        lines.append(f"{own_part_title}: {mine}")
    return "\n".join(lines)


def title_words(titles: list[str]) -> set[str]:
    """Our own words in a summary (the titles): not claims about the meeting, so not checked."""
    return {w.lower() for t in titles for w in words(t)}
