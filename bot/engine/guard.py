"""The guard every generated text passes before a user sees it.

A small model says odd things. Rather than hope, we check: a follow-up must be
one short open question; nothing may judge, carry a URL, or name a person or
organisation the user did not write. A text that fails is replaced by a
curated line by the caller, silently (DESIGN.md section 4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .prompt_data import GuardRules

URL_RE = re.compile(r"(https?://|www\.|\b[\w-]+\.(com|org|net|uk|io|gov|nhs)\b)", re.I)
WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’-]*")
CLOSED_STARTS = ("did ", "do ", "does ", "is ", "are ", "was ", "were ", "have ", "has ", "had ",
                 "can ", "could ", "will ", "would ", "should ", "shall ")
STOPWORDS = set("""a an the and or but of to in on at for with by from as is are was were be been being it
its this that these those there their they them we our you your i me my he she his her not no yes so if then
than too very can could would should will just about into over under up down out more most some any each
also what who how why when where which while after before during because""".split())


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


class Guard:
    """Checks generated follow-ups and summaries against prompts/guard.toml."""

    def __init__(self, rules: GuardRules, avoid: tuple[str, ...] = ()):
        """`avoid`: texts a generation must not parrot (the protocol's own questions, template examples)."""
        self.rules = rules
        self._avoid = [_content(a) for a in avoid if _content(a)]
        self._judging = [re.compile(rf"\b{re.escape(w)}\b", re.I) for w in rules.judging]
        self._allowed_caps = {w.lower() for w in rules.common_capitalised}

    def _common(self, text: str, source: str) -> Verdict:
        if URL_RE.search(text):
            return Verdict(False, "url")
        for pattern in self._judging:
            if pattern.search(text):
                return Verdict(False, "judging")
        if any(ch in text for ch in "<>{}[]|*#@\\`"):
            return Verdict(False, "markup")
        source_words = {w.lower().strip("'’") for w in WORD_RE.findall(source)}
        for word in self._proper_nouns(text):
            if word.lower() not in source_words:
                return Verdict(False, "new name")
        return Verdict(True)

    def _proper_nouns(self, text: str) -> list[str]:
        """Capitalised words not at a sentence start, plus any all-caps acronym."""
        names = []
        sentence_start = True
        for match in re.finditer(r"[A-Za-z][A-Za-z'’-]*|[.!?:;]", text):
            token = match.group(0)
            if token in ".!?:;":
                sentence_start = True
                continue
            bare = token.strip("'’")
            is_acronym = len(bare) >= 2 and bare.isupper()
            if (is_acronym or (bare[0].isupper() and not sentence_start)) \
                    and bare.lower() not in self._allowed_caps:
                names.append(bare)
            sentence_start = False
        return names

    def check_partial(self, text: str, source: str) -> Verdict:
        """For text still being written: nothing judging, no links, no names the user did not write."""
        return self._common(text, source)

    def check_followup(self, text: str, source: str) -> Verdict:
        """One short, open question, about what the user wrote."""
        limits = self.rules.followup
        t = text.strip()
        if not (limits.min_chars <= len(t) <= limits.max_chars):
            return Verdict(False, "length")
        if len(t.split()) > limits.max_words:
            return Verdict(False, "length")
        if t.count("?") != 1 or not t.endswith("?"):
            return Verdict(False, "not one question")
        if "\n" in t or '"' in t:
            return Verdict(False, "shape")
        if t.lower().startswith(CLOSED_STARTS):
            return Verdict(False, "closed question")
        if not t[0].isupper():
            return Verdict(False, "shape")
        if self._parrots(t):
            return Verdict(False, "repeats a known question")
        return self._common(t, source)

    def _parrots(self, text: str) -> bool:
        words = _content(text)
        return any(len(words & a) / len(words | a) >= 0.6 for a in self._avoid) if words else False

    def check_summary(self, text: str, source: str) -> Verdict:
        """A short plain summary that stays within what the user said."""
        limits = self.rules.summary
        t = text.strip()
        if not (limits.min_chars <= len(t) <= limits.max_chars):
            return Verdict(False, "length")
        if len(t.split()) > limits.max_words:
            return Verdict(False, "length")
        if "?" in t:
            return Verdict(False, "question")
        verdict = self._common(t, source)
        if not verdict.ok:
            return verdict
        source_words = {w.lower() for w in WORD_RE.findall(source)}
        for sentence in split_sentences(t):
            words = [w.lower() for w in WORD_RE.findall(sentence) if w.lower() not in STOPWORDS and len(w) > 2]
            if not words:
                continue
            overlap = sum(1 for w in words if w in source_words) / len(words)
            if overlap < limits.min_overlap:
                return Verdict(False, "strays from the answers")
            if self._parrots(sentence):
                return Verdict(False, "repeats an example")
        return Verdict(True)

    @staticmethod
    def tidy_summary(text: str) -> str:
        """Drop repeated sentences and a trailing fragment: small models loop and stop mid-way."""
        kept: list[str] = []
        for sentence in split_sentences(" ".join(text.split())):
            if sentence[-1:] not in ".!" or sentence.lower() in (k.lower() for k in kept):
                continue
            kept.append(sentence)
        return " ".join(kept[:4])


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _content(text: str) -> set[str]:
    return {w.lower() for w in WORD_RE.findall(text) if w.lower() not in STOPWORDS and len(w) > 2}
