"""The literature index: chroma, embedded, under the data directory. Literature only, never journals.

Implements the engine's Literature port. Ingest is idempotent: each chunk
carries its card's digest, so unchanged cards are not embedded again, changed
ones are replaced and removed ones are dropped. Chroma's telemetry is off, and
embeddings come from our offline embedder, never chroma's downloading default.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings

from bot.engine.ports import Suggestion

from .cards import Card, load_cards
from .embedder import MiniLMEmbedder

log = logging.getLogger(__name__)


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
    def __init__(self, chroma_dir: Path, embedder: MiniLMEmbedder, collection: str = "literature",
                 min_similarity: float = 0.35):
        self.embedder = embedder
        self.min_similarity = min_similarity
        self.client = open_chroma(Path(chroma_dir))
        self.collection = self.client.get_or_create_collection(
            collection, metadata={"hnsw:space": "cosine"}, embedding_function=None)

    def count(self) -> int:
        return self.collection.count()

    # ----- ingest ---------------------------------------------------------------

    def ingest(self, cards: list[Card], progress: bool = False) -> IngestReport:
        started = time.perf_counter()
        existing = self.collection.get(include=["metadatas"])
        known: dict[str, str] = {}
        for meta in existing["metadatas"] or []:
            known[meta["card_id"]] = meta["digest"]
        wanted = {c.card_id: c for c in cards}
        removed = [cid for cid in known if cid not in wanted]
        todo = [c for c in cards if known.get(c.card_id) != c.digest()]
        for cid in removed + [c.card_id for c in todo if c.card_id in known]:
            self.collection.delete(where={"card_id": cid})
        chunks = 0
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), unit="card", desc="Embedding literature cards")
        for card in todo:
            texts = card.chunks()
            vectors = self.embedder.embed_array(texts)
            self.collection.add(
                ids=[f"{card.card_id}#{i}" for i in range(len(texts))],
                embeddings=vectors, documents=texts,
                metadatas=[{"card_id": card.card_id, "digest": card.digest(), "title": card.title,
                            "citation": card.citation, "idea": card.idea, "themes": ",".join(card.themes)}
                           for _ in texts])
            chunks += len(texts)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return IngestReport(cards=len(cards), embedded_cards=len(todo), unchanged_cards=len(cards) - len(todo),
                            removed_cards=len(removed), chunks_embedded=chunks,
                            seconds=time.perf_counter() - started)

    def ingest_dir(self, knowledge_dir: Path, progress: bool = False) -> IngestReport:
        return self.ingest(load_cards(knowledge_dir), progress=progress)

    # ----- the port -------------------------------------------------------------

    def _matches(self, query: str, n: int = 8) -> list[tuple[float, dict]]:
        if not query.strip() or self.collection.count() == 0:
            return []
        vector = self.embedder.embed_array([query])
        res = self.collection.query(query_embeddings=vector, n_results=min(n, self.collection.count()),
                                    include=["metadatas", "distances"])
        best: dict[str, tuple[float, dict]] = {}
        for meta, dist in zip(res["metadatas"][0], res["distances"][0]):
            sim = 1.0 - float(dist)
            if meta["card_id"] not in best or sim > best[meta["card_id"]][0]:
                best[meta["card_id"]] = (sim, meta)
        return sorted(best.values(), key=lambda pair: -pair[0])

    def suggest(self, query: str) -> Suggestion | None:
        """The most relevant card's idea, or None when nothing is relevant enough."""
        for sim, meta in self._matches(query):
            if sim < self.min_similarity:
                return None
            return Suggestion(card_id=meta["card_id"], title=meta["title"], citation=meta["citation"],
                              idea=meta["idea"], themes=tuple(t for t in meta["themes"].split(",") if t),
                              similarity=sim)
        return None

    def themes(self, query: str, limit: int = 3) -> list[str]:
        out: list[str] = []
        for sim, meta in self._matches(query):
            if sim < self.min_similarity:
                break
            for theme in meta["themes"].split(","):
                if theme and theme not in out:
                    out.append(theme)
        return out[:limit]
