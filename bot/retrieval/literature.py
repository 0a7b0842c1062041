"""The literature index: chroma, embedded under the data directory or on a Chroma server. Literature only.

Implements the engine's Literature port; never holds journals. The index is
embedded (a PersistentClient in data_dir/chroma: one process) unless
`retrieval.server_url` names a Chroma server (bot/retrieval/chroma_server.py:
several processes), and behaves the same on both. Ingest is idempotent: each chunk
carries its card's digest and the embedding model's id, so unchanged cards are
not embedded again, changed ones (or all, after a model change) are replaced and
removed ones are dropped. Chroma's telemetry is off, and
embeddings come from our offline embedder, never chroma's downloading default.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from bot.engine.ports import Suggestion
from bot.engine.wording import sentences as split_sentences

from .cards import Card, load_cards
from .chroma_server import ChromaServer, LiteratureServerDown, ServerCollection
from .embedder import MiniLMEmbedder

log = logging.getLogger(__name__)
MAX_QUERY_SENTENCES = 40  # a very long reflection is matched on its first 40 sentences
# How a card's fit is scored: its best cue's cosine similarity to a sentence the person wrote, plus this
# much for each of its signals found in their words (counting at most two). Calibrated with
# `spanner eval --sweep`; a card with no signal in their words is never offered.
SIGNAL_WEIGHT = 0.2
MAX_SIGNALS = 2
EMBED_BATCH = 16  # texts per onnxruntime run at ingest: small batches of similar length pad little
ADD_BATCH = 1000  # chunks per chroma add (both the embedded client and `chroma run` take 5,461)


@dataclass(frozen=True)
class IngestReport:
    cards: int
    embedded_cards: int
    unchanged_cards: int
    removed_cards: int
    chunks_embedded: int
    seconds: float


def open_chroma(path: Path) -> chromadb.ClientAPI:
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False,
                                                                             allow_reset=False))


class LiteratureIndex:
    def __init__(self, chroma_dir: Path | None, embedder: MiniLMEmbedder, collection: str = "literature",
                 min_similarity: float = 0.6, server: ChromaServer | None = None):
        """The embedded index in `chroma_dir`, or with `server`, the collection on that Chroma server."""
        self.embedder = embedder
        self.min_similarity = min_similarity
        self.server = server
        if server is None:
            self._client = open_chroma(Path(chroma_dir))
            self.collection = self._client.get_or_create_collection(
                collection, metadata={"hnsw:space": "cosine"}, embedding_function=None)
        else:  # nothing is asked of the server yet: a server that is down must not stop start-up
            self.collection = ServerCollection(server)
        self._themes_by_card: dict[str, set[str]] | None = None
        self._compiled: dict[str, list[re.Pattern]] = {}
        self._chunks_seen = -1
        # Batches embedded side by side at ingest: one per core, each on one onnxruntime thread.
        self.ingest_workers = 1

    @property
    def client(self) -> chromadb.ClientAPI:
        return self._client if self.server is None else self.server.client

    def count(self) -> int:
        """Chunks in the index; on a server that is down, LiteratureServerDown (one line with the fix)."""
        return self.collection.count()

    def status_note(self) -> str | None:
        """A start-up line for the operator when literature ideas cannot be offered yet, else None."""
        try:
            if self.count() == 0:
                return "The literature index is empty: run `spanner ingest` to build it."
        except LiteratureServerDown as exc:
            exc.log_once()
            return f"Literature ideas are off until the server answers: {exc}"
        return None

    # ----- ingest ---------------------------------------------------------------

    def ingest(self, cards: list[Card], progress: bool = False) -> IngestReport:
        started = time.perf_counter()
        existing = self.collection.get(include=["metadatas"])
        known: dict[str, str] = {}
        for meta in existing["metadatas"] or []:
            known[meta["card_id"]] = meta["digest"]
        wanted = {c.card_id: c for c in cards}
        removed = [cid for cid in known if cid not in wanted]
        todo = [c for c in cards if known.get(c.card_id) != self._digest(c)]
        for cid in removed + [c.card_id for c in todo if c.card_id in known]:
            self.collection.delete(where={"card_id": cid})
        # Every changed card's chunks and cues, embedded together in batches (sorted by length, so a
        # batch pads little) on every core, then added to chroma at once: per-card embedding ran at a
        # third of the speed. The progress bar counts chunks.
        texts, ids, metas = [], [], []
        for card in todo:
            # The summary's chunks (kind "text") and the cues (kind "cue"): suggestions match cues.
            own = card.chunks() + list(card.cues)
            kinds = ["text"] * len(card.chunks()) + ["cue"] * len(card.cues)
            texts += own
            ids += [f"{card.card_id}#{i}" for i in range(len(own))]
            metas += [{"card_id": card.card_id, "digest": self._digest(card), "title": card.title,
                       "citation": card.citation, "idea": card.idea, "themes": ",".join(card.themes),
                       "signals": json.dumps(card.signals), "kind": kind} for kind in kinds]
        vectors = self._embed_all(texts, progress)
        for start in range(0, len(texts), ADD_BATCH):
            self.collection.add(ids=ids[start:start + ADD_BATCH], embeddings=vectors[start:start + ADD_BATCH],
                                documents=texts[start:start + ADD_BATCH], metadatas=metas[start:start + ADD_BATCH])
        chunks = len(texts)
        self._themes_by_card = None
        self._compiled = {}
        return IngestReport(cards=len(cards), embedded_cards=len(todo), unchanged_cards=len(cards) - len(todo),
                            removed_cards=len(removed), chunks_embedded=chunks,
                            seconds=time.perf_counter() - started)

    def _digest(self, card: Card) -> str:
        """A card's text and the model that embeds it: a card is embedded again when either changes."""
        return f"{card.digest()}:{getattr(self.embedder, 'model_id', '')}"

    def _embed_all(self, texts: list[str], progress: bool) -> np.ndarray:
        bar = None
        if progress and texts:
            from tqdm import tqdm
            bar = tqdm(total=len(texts), unit="chunk", desc="Embedding literature")
        try:
            return self.embedder.embed_batches(texts, EMBED_BATCH, workers=self.ingest_workers,
                                               progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()

    def ingest_dir(self, knowledge_dir: Path, progress: bool = False) -> IngestReport:
        return self.ingest(load_cards(knowledge_dir), progress=progress)

    # ----- the port -------------------------------------------------------------

    def _matches(self, query: str, themes: tuple[str, ...] = ()) -> list[tuple[float, dict]]:
        """Cards that fit the query, best first, scored as described at SIGNAL_WEIGHT.

        A person's sentence ("finance held the purse strings") is compared with each card's cues,
        written in the same practical language; a card scores its best cue against their best
        sentence, plus its signals found in their words. With `themes`, only cards carrying one of
        them are considered.
        """
        sentences = [s for s in split_sentences(query) if len(s.split()) >= 3][:MAX_QUERY_SENTENCES]
        if not sentences:
            return []
        chunks = self.collection.count()
        if chunks == 0:
            return []
        if chunks != self._chunks_seen:  # another process (on a server) ingested: card themes may have changed
            self._themes_by_card, self._chunks_seen = None, chunks
        where: dict = {"kind": "cue"}
        if themes:
            ids = self._cards_with(themes)
            if not ids:
                return []
            where = {"$and": [{"kind": "cue"}, {"card_id": {"$in": ids}}]}
        vectors = self.embedder.embed_array(sentences)
        res = self.collection.query(query_embeddings=vectors, n_results=min(12, chunks),
                                    where=where, include=["metadatas", "distances"])
        best: dict[str, tuple[float, dict]] = {}
        for metas, dists in zip(res["metadatas"], res["distances"]):
            for meta, dist in zip(metas, dists):
                sim = 1.0 - float(dist)
                if meta["card_id"] not in best or sim > best[meta["card_id"]][0]:
                    best[meta["card_id"]] = (sim, meta)
        scored = []
        for card_id, (sim, meta) in best.items():
            hits = sum(1 for p in self._signals(meta) if p.search(query))
            if hits:
                scored.append((sim + SIGNAL_WEIGHT * min(hits, MAX_SIGNALS), meta))
        return sorted(scored, key=lambda pair: -pair[0])

    def _signals(self, meta: dict) -> list[re.Pattern]:
        # Keyed by the signals themselves, so a card changed by another process's ingest is read afresh.
        raw = meta.get("signals") or "[]"
        if raw not in self._compiled:
            self._compiled[raw] = [re.compile(p, re.I) for p in json.loads(raw)]
        return self._compiled[raw]

    def _cards_with(self, themes: tuple[str, ...]) -> list[str]:
        if self._themes_by_card is None:
            got = self.collection.get(where={"kind": "cue"}, include=["metadatas"])
            self._themes_by_card = {m["card_id"]: set(m["themes"].split(",")) for m in got["metadatas"] or []}
        wanted = set(themes)
        return sorted(cid for cid, have in self._themes_by_card.items() if have & wanted)

    def matches(self, query: str, themes: tuple[str, ...] = ()) -> list[Suggestion]:
        """Every card that fits well enough (a score at or above min_similarity), best first.

        Nothing when the Chroma server is down: as with an empty index, the reflection goes on without."""
        try:
            found = self._matches(query, themes)
        except LiteratureServerDown as exc:
            exc.log_once()
            return []
        return [Suggestion(card_id=meta["card_id"], title=meta["title"], citation=meta["citation"],
                           idea=meta["idea"], themes=tuple(t for t in meta["themes"].split(",") if t),
                           similarity=sim)
                for sim, meta in found if sim >= self.min_similarity]

    def suggest(self, query: str, avoid: tuple[str, ...] = (), themes: tuple[str, ...] = ()) -> Suggestion | None:
        """The best-fitting card's idea, or None when nothing fits well enough.

        A card in `avoid` ("title, citation" of the idea offered last time) is passed over.
        """
        for found in self.matches(query, themes):
            if f"{found.title}, {found.citation}" not in avoid:
                return found
        return None

    def themes(self, query: str, limit: int = 3) -> list[str]:
        out: list[str] = []
        for found in self.matches(query):
            for theme in found.themes:
                if theme not in out:
                    out.append(theme)
        return out[:limit]
