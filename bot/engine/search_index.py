"""Each person's journal search, held in memory only: vectors in a numpy array, words in an inverted index.

A person's index is built on their first /search by decrypting their entries
once (Journal.search_candidates). Before each query it compares the journal's
stamp (how many entries, the highest number, the latest change: read without
decrypting) with its own; if another event or another process added, edited or
deleted an entry, it decrypts only the entries that changed. It is dropped when
the person is forgotten and after an idle time, and nothing in it is ever
written to disk: the plaintext lives in this process's memory while it is used.

Matching, as a person would check it by hand:
- a *keyword* match is a word of the query (two letters or more, not a common
  word such as "the") that begins a word of the entry, or whose stem does
  ("discharg" and "discharges" both find "discharge"); the score is the share
  of the query's words found;
- a *meaning* match is the cosine similarity of the query's embedding with the
  entry's, shown only at or above a calibrated floor and within a calibrated
  margin of the best match, so an unrelated entry is not offered just because
  it is the least unrelated;
- filters: `since DATE` (YYYY-MM-DD, in the person's time zone) and `tag:NAME`.
Each result says why it matched: the words it matched, or the passage of the
entry closest in meaning to the query (from passage vectors saved, encrypted,
with the entry).
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from typing import Callable, Iterable, Sequence

import numpy as np

from .inputs import InputError
from .records import Entry
from .wording import STOPWORDS, sentences, stem

WORD_RE = re.compile(r"\w+", re.U)
SINCE_RE = re.compile(r"(?:^|\s)since\s+(\S+)", re.I)
TAG_RE = re.compile(r"(?:^|\s)tags?:(\S+)", re.I)
#: At most this many passages per entry get a vector of their own (a long note keeps its first ones).
MAX_PASSAGES = 12


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def query_terms(text: str) -> list[str]:
    """The words a keyword match looks for: two letters or more, common words ("the", "about": they are in
    every entry) left out unless that is all there is."""
    found = [w for w in dict.fromkeys(words(text)) if len(w) > 1]
    return [w for w in found if w not in STOPWORDS] or found


def prefixes(term: str) -> tuple[str, ...]:
    """A query word finds entry words that begin with it or with its stem ("discharges" finds "discharge")."""
    root = stem(term)
    return (term,) if len(root) < 3 or root == term else (term, root)


def own_parts(entry: Entry) -> list[str]:
    """What the person wrote in an entry: the note, answers and follow-up answers (not the questions)."""
    parts = [entry.note] + [a.answer for a in entry.answers if not a.skipped] + \
        [a.followup_answer for a in entry.answers]
    return [p for p in parts if p and p.strip()]


def embedding_text(entry: Entry) -> str:
    """What an entry's own vector is made from: everything in it, without a title that only repeats the
    note's first words (a sentence said twice pulls the vector towards itself)."""
    text = entry.full_text()
    if entry.note and entry.title and entry.note.startswith(entry.title.rstrip("…")):
        text = text.removeprefix(entry.title + "\n")
    return text


def passages(entry: Entry) -> list[str]:
    """The entry's own sentences (or its summary's, if that is all it has), each of three words or more."""
    out: list[str] = []
    for source in own_parts(entry) or [entry.summary]:
        for part in sentences(source or ""):
            if len(words(part)) >= 3 and part not in out:
                out.append(part)
    return out[:MAX_PASSAGES]


@dataclass(frozen=True)
class Query:
    """What /search was asked: the words, and the filters."""

    text: str
    terms: tuple[str, ...]
    since: date | None = None
    tags: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.text and self.since is None and not self.tags


def parse_query(args: str) -> Query:
    """'/search carers since 2025-03-01 tag:housing' -> words 'carers', a date and a tag."""
    since = None
    found = SINCE_RE.search(args)
    if found:
        try:
            since = date.fromisoformat(found.group(1))
        except ValueError:
            raise InputError("search_bad_date", date=found.group(1)[:20]) from None
        args = args[:found.start()] + " " + args[found.end():]
    tags = tuple(t.lower().strip(",") for t in TAG_RE.findall(args) if t.strip(","))
    args = TAG_RE.sub(" ", args)
    text = " ".join(args.split())
    return Query(text, tuple(query_terms(text)), since, tags)


@dataclass
class Match:
    """One result and why: the entry words it matched, or its passage closest in meaning."""

    entry: Entry
    keyword: float
    meaning: float
    matched_words: tuple[str, ...] = ()
    passage: str = ""

    @property
    def score(self) -> float:
        return self.keyword + self.meaning


@dataclass
class PersonIndex:
    """One person's entries, their words and their vectors.

    The dictionaries change with each add, edit and delete; the arrays a query reads (entry numbers,
    the matrix of vectors, creation times, each word's rows) are made from them when next needed.
    """

    entries: dict[int, Entry] = field(default_factory=dict)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    terms_of: dict[int, frozenset[str]] = field(default_factory=dict)
    postings: dict[str, set[int]] = field(default_factory=dict)
    tagged: dict[str, set[int]] = field(default_factory=dict)
    passage_cache: dict[int, np.ndarray] = field(default_factory=dict)
    used: float = 0.0
    _arrays: dict | None = None
    _stamp: tuple | None = None

    def upsert(self, entry: Entry, vector: Sequence[float] | None) -> None:
        self.remove(entry.number)
        n = entry.number
        self.entries[n] = entry
        if vector is not None and len(vector):
            v = np.asarray(vector, dtype=np.float32)
            norm = float(np.linalg.norm(v))
            if norm > 0:
                self.vectors[n] = v / norm
        terms = frozenset(words(entry.full_text()))
        self.terms_of[n] = terms
        for t in terms:
            self.postings.setdefault(t, set()).add(n)
        for tag in {t.lower() for t in entry.tags}:
            self.tagged.setdefault(tag, set()).add(n)
        self._changed()

    def remove(self, number: int) -> None:
        entry = self.entries.pop(number, None)
        if entry is None:
            return
        self.vectors.pop(number, None)
        self.passage_cache.pop(number, None)
        for index, keys in ((self.postings, self.terms_of.pop(number, ())),
                            (self.tagged, {t.lower() for t in entry.tags})):
            for key in keys:
                holders = index.get(key)
                if holders is not None:
                    holders.discard(number)
                    if not holders:
                        del index[key]
        self._changed()

    def _changed(self) -> None:
        self._arrays = self._stamp = None

    def stamp(self) -> tuple:
        """The same three facts as Journal.journal_stamp, from what this index holds."""
        if self._stamp is None:
            self._stamp = (0, 0, None) if not self.entries else (
                len(self.entries), max(self.entries),
                max((e.updated_at for e in self.entries.values() if e.updated_at is not None), default=None))
        return self._stamp

    def stamps(self) -> dict[int, object]:
        return {n: e.updated_at for n, e in self.entries.items()}

    def arrays(self) -> dict:
        """numbers, rows (number -> row), matrix (zero rows where no vector), has_vector, created, vocab, word rows."""
        if self._arrays is None:
            numbers = np.fromiter(self.entries, dtype=np.int64, count=len(self.entries))
            rows = {n: i for i, n in enumerate(self.entries)}
            width = next((v.shape[0] for v in self.vectors.values()), 0)
            matrix = np.zeros((len(numbers), width), dtype=np.float32)
            has_vector = np.zeros(len(numbers), dtype=bool)
            for n, v in self.vectors.items():
                if v.shape[0] == width:
                    matrix[rows[n]], has_vector[rows[n]] = v, True
            created = np.array([e.created_at.timestamp() if e.created_at else 0.0 for e in self.entries.values()])
            self._arrays = {"numbers": numbers, "rows": rows, "matrix": matrix, "has_vector": has_vector,
                            "created": created, "vocab": sorted(self.postings), "word_rows": {}}
        return self._arrays

    def rows_of(self, numbers: Iterable[int]) -> np.ndarray:
        rows = self.arrays()["rows"]
        return np.fromiter((rows[n] for n in numbers), dtype=np.int64)

    def keyword_counts(self, terms: Sequence[str]) -> np.ndarray:
        """For each entry (in row order), how many of the query's words it holds."""
        a = self.arrays()
        counts = np.zeros(len(a["numbers"]), dtype=np.int32)
        vocab, cached = a["vocab"], a["word_rows"]
        for term in terms:
            found = []
            for prefix in prefixes(term):
                i = bisect_left(vocab, prefix)
                while i < len(vocab) and vocab[i].startswith(prefix):
                    word = vocab[i]
                    if word not in cached:
                        cached[word] = self.rows_of(self.postings[word])
                    found.append(cached[word])
                    i += 1
            if found:
                counts[np.unique(np.concatenate(found))] += 1
        return counts

    def matched_words(self, number: int, terms: Sequence[str]) -> tuple[str, ...]:
        """The entry's own words that the query's words found, one per query word."""
        own = sorted(self.terms_of.get(number, ()))
        out = []
        for term in terms:
            word = next((w for p in prefixes(term) for w in own if w.startswith(p)), None)
            if word is not None:
                out.append(word)
        return tuple(out)


class SearchIndex:
    """Every person's index in this process, kept in step with their journal; memory only."""

    def __init__(self, journal: Callable[[], object], embed: Callable[[list[str]], list] | None,
                 idle_seconds: float = 1800.0, clock: Callable[[], float] = time.monotonic):
        self._journal = journal  # the committed journal (a port), asked at each query
        self._embed = embed
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._people: dict[str, PersonIndex] = {}
        #: Counters a test or the benchmark reads: full builds, and refreshes of changed entries only.
        self.builds = 0
        self.refreshed = 0

    def holds(self, user: str) -> bool:
        return user in self._people

    def drop(self, user: str) -> None:
        """Forget what is held for this person (on /forget, and when idle)."""
        self._people.pop(user, None)

    def sweep(self) -> None:
        now = self._clock()
        for user in [u for u, idx in self._people.items() if now - idx.used > self.idle_seconds]:
            self.drop(user)

    def person(self, user: str) -> PersonIndex | None:
        """This person's index, up to date with their journal; None if they have no journal."""
        self.sweep()
        journal = self._journal()
        stamp = journal.journal_stamp(user)
        if stamp is None:
            self.drop(user)
            return None
        idx = self._people.get(user)
        if idx is None:
            idx = PersonIndex()
            for entry, vector in journal.search_candidates(user):
                idx.upsert(entry, vector)
            self._people[user] = idx
            self.builds += 1
        elif idx.stamp() != tuple(stamp):
            now, held = journal.entry_stamps(user), idx.stamps()
            for number in set(held) - set(now):
                idx.remove(number)
            changed = [n for n, when in now.items() if held.get(n) != when]
            if changed:
                for entry, vector in journal.search_candidates(user, changed):
                    idx.upsert(entry, vector)
            self.refreshed += 1
        idx.used = self._clock()
        return idx

    def search(self, user: str, query: Query, qvec: Sequence[float] | None, floor: float, margin: float,
               limit: int, zone: tzinfo | None = None) -> list[Match]:
        """The best `limit` matches: keyword matches, and meaning matches at or above `floor` and within
        `margin` of the journal's best (similarity scores drift with length and wording, so a bar
        relative to the best match keeps the merely least-unrelated entries out). Ties: newest first."""
        idx = self.person(user)
        if idx is None or not idx.entries:
            return []
        a = idx.arrays()
        numbers, count = a["numbers"], len(a["numbers"])
        terms = len(query.terms)
        keyword = idx.keyword_counts(query.terms) / terms if terms else np.zeros(count)
        meaning = np.zeros(count, dtype=np.float32)
        q = None if qvec is None else np.asarray(qvec, dtype=np.float32)
        if query.text:
            chosen = keyword > 0
            if q is not None and a["has_vector"].any() and q.shape[0] == a["matrix"].shape[1]:
                q = q / max(float(np.linalg.norm(q)), 1e-12)
                meaning = np.where(a["has_vector"], a["matrix"] @ q, 0.0).astype(np.float32)
                bar = max(floor, float(meaning[a["has_vector"]].max()) - margin)
                chosen |= a["has_vector"] & (meaning >= bar)
        else:
            chosen = np.ones(count, dtype=bool)  # filters alone: every entry that passes them
        if query.since is not None:
            start = datetime.combine(query.since, datetime.min.time(), zone or timezone.utc)
            chosen &= a["created"] >= start.timestamp()
        for tag in query.tags:
            tagged = np.zeros(count, dtype=bool)
            tagged[idx.rows_of(idx.tagged.get(tag, ()))] = True
            chosen &= tagged
        picked = np.flatnonzero(chosen)
        score = keyword[picked] + meaning[picked]
        best = picked[np.lexsort((-numbers[picked], -score))[:limit]]
        shown = [Match(idx.entries[int(numbers[r])], float(keyword[r]), float(meaning[r]),
                       idx.matched_words(int(numbers[r]), query.terms) if keyword[r] > 0 else ()) for r in best]
        if q is not None and query.text:
            for m in shown:
                if not m.matched_words:
                    m.passage = self._closest_passage(user, idx, m.entry, q)
        return shown

    def _closest_passage(self, user: str, idx: PersonIndex, entry: Entry, q: np.ndarray) -> str:
        texts = passages(entry)
        if not texts:
            return ""
        vectors = idx.passage_cache.get(entry.number)
        if vectors is None or vectors.shape[0] != len(texts):
            saved = self._journal().passage_vectors(user, entry.number)
            if len(saved) == len(texts):
                vectors = np.asarray(saved, dtype=np.float32)
            elif self._embed is not None:  # an entry saved before passages had vectors: embed them once
                vectors = np.asarray(self._embed(texts), dtype=np.float32)
            else:
                return ""
            idx.passage_cache[entry.number] = vectors
        return texts[int(np.argmax(vectors @ q))]
