"""Replacing the names of people and organisations with neutral labels before an entry is shared.

A heuristic, shown to the author before anything is shared: capitalised words
that are not at the start of a sentence (and not common words), and acronyms,
become "Person A", "Organisation B" and so on (the words come from prompts),
the same name always getting the same label. Words that end like an
organisation (Trust, Council, ...) mark the whole name as an organisation.
"""

from __future__ import annotations

import re
import string

ORG_WORDS = {"trust", "council", "nhs", "icb", "ccg", "hospital", "federation", "practice", "surgery",
             "authority", "board", "foundation", "partnership", "service", "services", "team", "hospice",
             "charity", "university", "college", "school", "police", "ltd", "limited", "group"}
NAME_RE = re.compile(r"(?<![\w'’])(?:[A-Z][\w'’-]*|[A-Z]{2,})(?:\s+(?:[A-Z][\w'’-]*|of|for|and|&)){0,4}(?![\w'’])")


def _mid_sentence_capitals(text: str) -> set[str]:
    """Words written with a capital somewhere other than a sentence start: likely names."""
    found = set()
    for match in re.finditer(r"(?<=[a-z,;]\s)([A-Z][\w'’-]*)", text):
        found.add(match.group(1).lower())
    return found


def pseudonymise(text: str, common: set[str], kinds: tuple[str, str], context: str = "") -> str:
    """Swap names for labels; `common` lists capitalised words that are not names (lower case).

    A capitalised word at the start of a sentence is taken for a name only if it is written
    with a capital mid-sentence somewhere in `context` (all the user's words) as well.
    `kinds` are the words for a person and an organisation (prompts/messages.toml).
    """
    person, organisation = kinds
    names_elsewhere = _mid_sentence_capitals(context or text)
    labels: dict[str, str] = {}
    counters = {person: 0, organisation: 0}

    def label_for(name: str) -> str:
        key = name.lower()
        if key not in labels and " " not in key:
            # "Priya" after "Priya Shah": the same person, the same label.
            known = next((k for k in labels if key in k.split()), None)
            if known:
                return labels[known]
        if key not in labels:
            kind = organisation if (set(key.split()) & ORG_WORDS or name.isupper()) else person
            labels[key] = f"{kind} {string.ascii_uppercase[counters[kind] % 26]}"
            counters[kind] += 1
        return labels[key]

    def replace(match: re.Match) -> str:
        name = match.group(0).rstrip()
        for joiner in (" of", " for", " and", " &"):  # don't let a name end on a joining word
            if name.endswith(joiner):
                name = name[: -len(joiner)]
        words = name.split()
        start = match.start()
        before = text[:start].rstrip()
        at_sentence_start = not before or before[-1] in ".!?:\n"
        first = words[0].lower()
        ordinary_first = first in common or (at_sentence_start and not words[0].isupper()
                                             and first not in names_elsewhere)
        if ordinary_first:
            if len(words) == 1:
                return match.group(0)
            # "The NHS Trust", "Met Priya Shah": keep the ordinary first word, label the rest.
            return words[0] + " " + label_for(" ".join(words[1:])) + match.group(0)[len(name):]
        return label_for(name) + match.group(0)[len(name):]

    return NAME_RE.sub(replace, text)
