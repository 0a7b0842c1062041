"""Files shipped inside installed packages, and the SHA-256 that pins them.

The default model, the embedder, the Whisper weights and Spanner's own adapter are all read from
disk and checked by hash; these two helpers serve every one of them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
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


def content_id(path: Path) -> str:
    """A short name for a file's bytes (the first 16 hex digits of its SHA-256), read once per process for
    each version of the file: the embedders and the literature's int8 model all name the same 23 MB file
    at start-up. A replaced file (another size, time or inode) is read again."""
    st = os.stat(path)
    return _content_id(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=32)
def _content_id(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return sha256_of(Path(path))[:16]
