"""Calibrating /search's meaning floor on a journal of our own with queries of known answers.

A match by meaning alone is shown only at or above a cosine similarity floor, and only if it is
within a margin of the best match in the journal. Too low and a query about a holiday brings back a
discharge reflection; too high and a query worded differently from the entry finds nothing. (With
this embedder a related short entry scores about 0.25-0.5 and an unrelated one up to about 0.35, so
neither bar alone separates them; together they do much better.) tests/fixtures/search_calibration.toml holds short entries, queries written
without the entries' words (so only meaning can find them) and queries with no answer at all. Each
(query, entry) pair is a decision: show or not. The floor chosen is the one with the best F1 over
those decisions (floor and margin on a grid), the higher floor and narrower margin on a tie (an unrelated entry shown costs more trust than a
related one missed). `spanner bench --data` prints it beside the configured floor.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.records import Entry
from ..engine.reflection import first_sentence
from ..engine.search_index import embedding_text


@dataclass(frozen=True)
class Calibration:
    floor: float
    margin: float
    precision: float
    recall: float
    shown_for_no_answer: int  # entries shown for queries that have no answer


def load(path: Path) -> tuple[list[Entry], list[tuple[str, set[int]]]]:
    data = tomllib.loads(Path(path).read_text())
    entries = [Entry(kind="note", number=i, note=text, title=first_sentence(text, 80))
               for i, text in enumerate(data["entries"], start=1)]
    queries = [(q["query"], set(q["answers"])) for q in data["queries"]]
    return entries, queries


def similarities(embedder, entries: list[Entry], queries: list[tuple[str, set[int]]]) -> np.ndarray:
    """Queries x entries cosine similarities, with the vectors the journal saves (search_index.embedding_text)."""
    ev = np.asarray(embedder.embed([embedding_text(e) for e in entries]), dtype=np.float32)
    qv = np.asarray(embedder.embed([q for q, _ in queries]), dtype=np.float32)
    ev /= np.linalg.norm(ev, axis=1, keepdims=True)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    return qv @ ev.T


def judge(sims: np.ndarray, queries: list[tuple[str, set[int]]], floor: float, margin: float) -> Calibration:
    """What the rule of search_index.SearchIndex shows: at or above the floor and within margin of the best."""
    shown = (sims >= floor) & (sims >= sims.max(axis=1, keepdims=True) - margin)
    truth = np.zeros_like(shown)
    for i, (_, answers) in enumerate(queries):
        for n in answers:
            truth[i, n - 1] = True
    tp = int((shown & truth).sum())
    precision = tp / max(int(shown.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    none = sum(int(shown[i].sum()) for i, (_, answers) in enumerate(queries) if not answers)
    return Calibration(round(floor, 2), round(margin, 2), precision, recall, none)


def f1(c: Calibration) -> float:
    return 2 * c.precision * c.recall / (c.precision + c.recall) if c.precision + c.recall else 0.0


def choose(sims: np.ndarray, queries: list[tuple[str, set[int]]]) -> Calibration:
    best, best_f1 = None, -1.0
    for floor in np.arange(0.10, 0.60, 0.01):
        for margin in np.arange(0.30, -0.001, -0.01):
            c = judge(sims, queries, float(floor), float(margin))
            if f1(c) >= best_f1:
                best, best_f1 = c, f1(c)
    return best
