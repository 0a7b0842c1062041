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
from .wording import content_words, jaccard, singular, stem, unsupported, words

URL_RE = re.compile(r"(https?://|www\.|\b[\w-]+\.(com|org|net|uk|io|gov|nhs)\b)", re.I)
WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’-]*")
CLOSED_STARTS = ("did ", "do ", "does ", "is ", "are ", "was ", "were ", "have ", "has ", "had ",
                 "can ", "could ", "will ", "would ", "should ", "shall ")


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
        # Roles and organisations as word sequences in their singular form, so "councils" and "Council"
        # both match "council" (a stemmer would also merge "practical" with "practice").
        self._roles = [tuple(singular(w) for w in words(r)) for r in rules.roles if words(r)]

    def _common(self, text: str, source: str) -> Verdict:
        if URL_RE.search(text):
            return Verdict(False, "url")
        for pattern in self._judging:
            if pattern.search(text):
                return Verdict(False, "judging")
        if any(ch in text for ch in "<>{}[]|*#@\\`"):
            return Verdict(False, "markup")
        if self.unknown_names(text, source):
            return Verdict(False, "new name")
        return Verdict(True)

    def unknown_names(self, text: str, source: str) -> list[str]:
        """Names, roles and organisations in `text` (any capitalisation) the person never wrote."""
        written = WORD_RE.findall(source)
        source_words = {w.lower().strip("'’") for w in written}
        # "Tariq's drop-in" names Tariq, and "the GP" is the "GPs" they wrote: compare without
        # possessive and plural endings too.
        source_singular = _singulars(written)
        names = [w for w in self._proper_nouns(text)
                 if w.lower() not in source_words and singular(w) not in source_singular]
        return names + self.new_roles(text, source)

    def new_roles(self, text: str, source: str) -> list[str]:
        """Roles or organisations named in `text` (any capitalisation) that the person never wrote."""
        said = [singular(w) for w in words(text)]
        have = _singulars(words(source))
        found = []
        for role in self._roles:
            n = len(role)
            for i in range(len(said) - n + 1):
                if tuple(said[i:i + n]) == role and not all(part in have for part in role):
                    found.append(" ".join(role))
                    break
        return found

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

    def check_followup(self, text: str, source: str, step_question: str = "") -> Verdict:
        """One short, open question, about what the user wrote, that does not re-ask the step."""
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
        if step_question and self.reasks(t, step_question):
            return Verdict(False, "re-asks the step")
        # A role the step's own question names ("critical friend", "regulator") is not a new one.
        return self._common(t, f"{source}\n{step_question}" if step_question else source)

    @staticmethod
    def reasks(text: str, step_question: str) -> bool:
        """The step's own question, or a close paraphrase of one of its sentences."""
        parts = [p for p in re.split(r"(?<=[?.])\s+", step_question) if p.strip()] + [step_question]
        return any(jaccard(text, part) >= 0.5 for part in parts)

    def _parrots(self, text: str) -> bool:
        words = _content(text)
        # Two content words say too little to call a line a copy ("who had influence without...").
        return any(len(words & a) / len(words | a) >= 0.6 for a in self._avoid) if len(words) >= 3 else False

    def check_summary(self, text: str, source: str) -> Verdict:
        """A short plain summary with no content word, name or number the person did not write."""
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
        if unsupported(t, source):
            return Verdict(False, "words the person did not write")
        for sentence in split_sentences(t):
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
    return {stem(w) for w in content_words(text)}


def _singulars(written) -> set[str]:
    """Each word without possessive or plural ending; an acronym's plural too ("GPs" -> "gp")."""
    found = {singular(w) for w in written}
    found |= {w[:-1].lower() for w in written if len(w) >= 3 and w.endswith("s") and w[:-1].isupper()}
    return found
