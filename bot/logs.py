"""Logging set-up: a rotating file in the data directory, and nothing that carries user text.

Our own log calls record event types, counts and error types only (promise
13). Chatty libraries are turned down so they cannot echo payloads either.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

QUIET = ("chromadb", "httpx", "httpcore", "urllib3", "onnxruntime", "alembic", "telegram", "apscheduler")


def setup_logging(log_dir: Path, level: str = "INFO") -> logging.Handler | None:
    """Attach a file handler for this data directory; the caller removes it when done (close_logging)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    target = str(log_dir / "spanner.log")
    if any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        return None
    handler = logging.handlers.RotatingFileHandler(target, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def close_logging(handler: logging.Handler | None) -> None:
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        handler.close()
