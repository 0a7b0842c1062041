"""Turning what the Deidentifier found into readable replacements the author can check and undo.

The Deidentifier port (Presidio over spaCy) says where people, organisations,
places and UK identifiers are. This module decides what a reader will see:

- one label per distinct person in an entry ("Person A" everywhere for Mrs K,
  "Person B" for Dave; "Priya" after "Priya Shah" is the same person), and the
  same for organisations and places; identifiers become their kind
  ("[NHS number]");
- the writer's own pronouns, role words ("the ward manager") and names that
  identify nobody (prompts/deidentify.toml) are never replaced;
- a span never swallows the quotes or punctuation around it;
- a title belongs to its name ("Mrs K" is one person, and becomes "Person A").

A Plan is deterministic for the same texts, so the author's undo choices are
kept as group numbers and the preview is rebuilt from them; the preview and
what the reader gets come from the same `apply`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .ports import Deidentifier, Finding
from .records import Entry

NAME_KINDS = ("person", "organisation", "place")
IDENTIFIER_KINDS = ("nhs_number", "ni_number", "postcode", "phone", "date_of_birth", "ward", "bed", "email")
#: The order kinds are listed in when the author is told what was found.
KINDS = NAME_KINDS + IDENTIFIER_KINDS
_EDGE = "\"'“”‘’«»()[]{}<>.,;:!?-–—*_/\\ \t\n"
_POSSESSIVE = re.compile(r"['’]s$")
_WORD = re.compile(r"[\w'’&.-]+")


@dataclass(frozen=True)
class Group:
    """One distinct thing replaced: its kind, how it was first written, and its label."""

    kind: str
    original: str
    label: str


@dataclass(frozen=True)
class Swap:
    text: int  # which of the texts
    start: int
    end: int
    group: int


@dataclass(frozen=True)
class Plan:
    texts: tuple[str, ...]
    groups: tuple[Group, ...]
    swaps: tuple[Swap, ...]

    def counts(self, undone: Sequence[int] = ()) -> list[tuple[str, int]]:
        """(kind, how many distinct ones) in a fixed order: what the author is told, never the values."""
        found = Counter(g.kind for i, g in enumerate(self.groups) if i not in undone)
        return [(kind, found[kind]) for kind in KINDS if found[kind]]

    def apply(self, finder: Deidentifier, undone: Sequence[int] = ()) -> list[str]:
        out = []
        for index, text in enumerate(self.texts):
            swaps = [(s.start, s.end, self.groups[s.group].label) for s in self.swaps
                     if s.text == index and s.group not in undone]
            out.append(finder.replace(text, swaps) if swaps else text)
        return out


class Rules:
    """prompts/deidentify.toml, in the shapes the matching needs (lower case sets)."""

    def __init__(self, data):
        self.keep = {k.lower() for k in data.keep}
        self.roles = {r.lower() for r in data.roles}
        self.pronouns = {p.lower() for p in data.pronouns}
        self.titles = {t.lower() for t in data.titles}


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        end -= 1
    return start, end


def _tidy(text: str, f: Finding, rules: Rules) -> Finding | None:
    """The finding cut to the name itself, with its title; None if it is no name at all."""
    start, end = _trim(text, f.start, f.end)
    kind = f.kind
    if kind in NAME_KINDS:
        possessive = _POSSESSIVE.search(text[start:end])
        if possessive and not text[start:end].lower().startswith(("st ", "st. ")):
            end -= 2  # "Priya's" -> "Person A's"
        words = text[start:end].split()
        # Never the writer's own "I", never a role or a title on its own, at either end.
        while words and (words[0].lower() in rules.pronouns or words[0].lower() in rules.roles
                         or words[0].lower() in rules.keep):  # "Met Priya": the verb is no part of her name
            start = text.index(words[0], start) + len(words[0])
            start, end = _trim(text, start, end)
            words = words[1:]
        while words and (words[-1].lower() in rules.pronouns or words[-1].lower() in rules.roles):
            end = text.rindex(words[-1], start, end)
            start, end = _trim(text, start, end)
            words = words[:-1]
        if not words:
            return None
        span = text[start:end]
        if span.lower() in rules.keep or not any(c.isupper() for c in span):
            return None  # lower-case words are roles and common nouns, not names
        before = re.search(r"([A-Z][a-z]{1,9})\.?\s+$", text[max(0, start - 16):start])
        if before and before.group(1).lower() in rules.titles:
            start -= len(before.group(0))  # "Mrs K": the title goes with the name
            kind = "person"
        elif span.split()[0].strip(".").lower() in rules.titles:
            kind = "person"
        elif kind == "organisation" and len(words) == 1 and span.istitle() and not span.isupper():
            kind = "person"  # a lone capitalised word the model calls an organisation is mostly a name
    if end <= start:
        return None
    return Finding(start, end, kind, f.score)


def _resolve(found: list[Finding]) -> list[Finding]:
    """Overlaps: an identifier's pattern wins over a name the model guessed, then the surer, then the longer."""
    ranked = sorted(found, key=lambda f: (f.kind in NAME_KINDS, -f.score, f.start - f.end))
    kept: list[Finding] = []
    for f in ranked:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def _key(kind: str, span: str, titles: set[str]) -> tuple[str, tuple[str, ...]]:
    if kind in IDENTIFIER_KINDS:
        return kind, (re.sub(r"[^a-z0-9@.]", "", span.lower()),)
    words = [w.lower().strip(".") for w in _WORD.findall(_POSSESSIVE.sub("", span))]
    return ("name", tuple(words)) if kind != "person" else ("person", tuple(words))


def _same_person(a: tuple[str, ...], b: tuple[str, ...], titles: set[str]) -> bool:
    """"Priya" and "Priya Shah"; "Mrs Khan" and "Khan"; never "Mr K" and "Mrs K", nor two initials."""
    if a == b:
        return True
    ta, tb = [w for w in a if w in titles], [w for w in b if w in titles]
    if ta and tb and ta != tb:
        return False
    na, nb = [w for w in a if w not in titles], [w for w in b if w not in titles]
    short, long_ = (na, nb) if len(na) <= len(nb) else (nb, na)
    if not short or (len(short) == 1 and len(short[0]) == 1 and short != long_):
        return False
    return all(w in long_ for w in short)


def plan(texts: Sequence[str], findings: Sequence[Sequence[Finding]], rules: Rules,
         label_word: Callable[[str], str]) -> Plan:
    """The replacements for one entry's texts. `label_word(kind)` gives "Person", "[NHS number]"..."""
    groups: list[Group] = []
    keys: list[tuple[str, tuple[str, ...]]] = []
    swaps: list[Swap] = []
    letters: Counter = Counter()
    for index, (text, found) in enumerate(zip(texts, findings)):
        tidy = [t for t in (_tidy(text, f, rules) for f in found) if t is not None]
        for f in _resolve(tidy):
            span = text[f.start:f.end]
            key = _key(f.kind, span, rules.titles)
            group = next((i for i, k in enumerate(keys) if k[0] == key[0] and (
                k == key or (key[0] == "person" and _same_person(k[1], key[1], rules.titles)))), None)
            if group is None:
                if f.kind in NAME_KINDS:
                    label = f"{label_word(f.kind)} {string.ascii_uppercase[letters[f.kind] % 26]}"
                    letters[f.kind] += 1
                else:
                    label = label_word(f.kind)
                groups.append(Group(f.kind, span, label))
                keys.append(key)
                group = len(groups) - 1
            swaps.append(Swap(index, f.start, f.end, group))
    swaps += _elsewhere(texts, groups, swaps, rules)
    return Plan(tuple(texts), tuple(groups), tuple(sorted(swaps, key=lambda s: (s.text, s.start))))


def _elsewhere(texts: Sequence[str], groups: list[Group], swaps: list[Swap], rules: Rules) -> list[Swap]:
    """A name found once is replaced wherever else it is written in the entry ("fair to Priya." too)."""
    more: list[Swap] = []
    taken = [(s.text, s.start, s.end) for s in swaps]
    for number, group in enumerate(groups):
        if group.kind not in NAME_KINDS:
            continue
        names = {group.original}
        if group.kind == "person":  # "Priya" on her own, after "Priya Shah"; never a lone title or initial
            names |= {w for w in group.original.split() if len(w) > 1 and w.lower().strip(".") not in rules.titles
                      and w[0].isupper() and w.lower() not in rules.keep}
        for name in sorted(names, key=len, reverse=True):
            pattern = re.compile(rf"(?<![\w'’]){re.escape(name)}(?![\w])")
            for index, text in enumerate(texts):
                for m in pattern.finditer(text):
                    if all(i != index or m.end() <= a or m.start() >= b for i, a, b in taken):
                        more.append(Swap(index, m.start(), m.end(), number))
                        taken.append((index, m.start(), m.end()))
    return more


# ----- an entry's own words ---------------------------------------------------------------------

def entry_texts(entry: Entry) -> list[str]:
    """Every text of an entry the person wrote (never our own questions), in a fixed order."""
    texts = [entry.title, entry.note, entry.summary, *entry.tags]
    for a in entry.answers:
        texts += [a.answer, a.followup_answer]
    return texts


def with_texts(entry: Entry, texts: Sequence[str]) -> Entry:
    """The entry with its texts replaced, in entry_texts' order."""
    it = iter(texts)
    title, note, summary = next(it), next(it), next(it)
    tags = [next(it) for _ in entry.tags]
    answers = [replace(a, answer=next(it), followup_answer=next(it)) for a in entry.answers]
    return replace(entry, title=title, note=note, summary=summary, tags=tags, answers=answers)
