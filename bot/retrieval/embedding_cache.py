"""Embeddings of our own public sentences (safety examples), computed once and kept on disk.

The risk screen compares each message with about 1,500 example sentences. Embedding them takes
seconds on 2 cores, so they are embedded once per set of sentences and model, saved under the
data directory's cache/ folder (public text only: never anything a person wrote), and shared in
memory by every part of the process that asks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)
_memo: dict[str, np.ndarray] = {}


def _key(texts: Sequence[str], model_id: str) -> str:
    digest = hashlib.sha256(model_id.encode())
    for text in texts:
        digest.update(b"\x1f" + text.encode("utf-8"))
    return digest.hexdigest()[:24]


def cached_embeddings(texts: Sequence[str], embedder, folder: Path | None, model_id: str) -> np.ndarray:
    """The embeddings of `texts`, from memory, else from `folder`, else computed (and saved there)."""
    key = _key(texts, model_id)
    if key in _memo:
        return _memo[key]
    path = folder / f"embeddings-{key}.npy" if folder is not None else None
    vectors = None
    if path is not None and path.is_file():
        try:
            vectors = np.load(path, allow_pickle=False)
            if vectors.shape[0] != len(texts):
                vectors = None
        except (OSError, ValueError):
            vectors = None  # a damaged cache file is simply rebuilt
    if vectors is None:
        vectors = np.asarray(embedder.embed_batches(list(texts), workers=os.cpu_count() or 1), dtype=np.float32)
        if path is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.partial")
                with os.fdopen(fd, "wb") as handle:
                    np.save(handle, vectors, allow_pickle=False)
                os.replace(tmp, path)
            except OSError as exc:  # a read-only or full disk only costs the time to embed again
                log.warning("embedding cache not written: %s", type(exc).__name__)
    _memo[key] = vectors
    return vectors
