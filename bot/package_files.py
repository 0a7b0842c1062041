"""Files shipped inside installed packages, and the SHA-256 that pins them.

The default model, the embedder, the Whisper weights and Spanner's own adapter are all read from
disk and checked by hash; these two helpers serve every one of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path


def package_dir(name: str) -> Path | None:
    """A package's folder, found without importing (and so without running) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def sha256_of(*paths: Path) -> str:
    """One SHA-256 over the files' bytes in the order given, read in 1 MB blocks (a model never sits in memory)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
