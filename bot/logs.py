"""Logging set-up: a rotating file in the data directory, and nothing that carries user text.

Our own log calls record event types, counts and error types only (promise
13). Chatty libraries are turned down so they cannot echo payloads either.

An unexpected error is logged with `exc_info` like anywhere else, but our
formatter writes only the exception's type and its stack frames (file, line,
function) for each exception in the chain: enough to find the bug, and never
the exception's message or arguments, which can quote what a person wrote.

A log line that cannot be written (a full disk) is dropped quietly rather than
printing a traceback into the person's chat on the console.
"""

from __future__ import annotations

import logging
import logging.handlers
import traceback
from pathlib import Path

QUIET = ("chromadb", "httpx", "httpcore", "urllib3", "onnxruntime", "alembic", "telegram", "apscheduler")


def describe_exception(exc: BaseException) -> str:
    """Type and frames of an exception and its causes, oldest first: no message, no arguments."""
    chain, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    lines = []
    for i, item in enumerate(reversed(chain)):
        if i:
            lines.append("  which led to:")
        kind = type(item)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        lines.append(f"  {name}")
        lines += [f'    File "{f.filename}", line {f.lineno}, in {f.name}'
                  for f in traceback.extract_tb(item.__traceback__)]
    return "\n".join(lines)


class FramesOnlyFormatter(logging.Formatter):
    """Formats exceptions as type and frames only (describe_exception)."""

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return describe_exception(ei[1]) if ei and ei[1] is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        # logging caches the first handler's rendering of the exception on the record (exc_text);
        # another handler's full traceback, with its message, must never be reused here.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached


class DataDirLogHandler(logging.handlers.RotatingFileHandler):
    """The rotating log file; a line that cannot be written (disk full) is counted, never printed."""

    dropped = 0

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self.dropped += 1


def setup_logging(log_dir: Path, level: str = "INFO") -> logging.Handler | None:
    """Attach a file handler for this data directory; the caller removes it when done (close_logging)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    target = str(log_dir / "spanner.log")
    if any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        return None
    handler = DataDirLogHandler(target, maxBytes=2_000_000, backupCount=3, encoding="utf-8", delay=True)
    handler.setFormatter(FramesOnlyFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def close_logging(handler: logging.Handler | None) -> None:
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        handler.close()
