"""The literature index on a Chroma server (`retrieval.server_url`): for several Spanner processes at once.

Chroma's embedded client is thread-safe but not process-safe, so when more than
one process (several Telegram workers, a console beside the bot) reads the
index, it lives in a Chroma server (`chroma run`, shipped with the chromadb
package) and every process reaches it over HTTP with `chromadb.HttpClient`.

Embeddings are computed here with our offline MiniLM and passed on every add
and query, so the server needs no model and never downloads one. The client's
telemetry is off. Literature is a nicety: a server that is down (at start or
mid-run) or hangs is one line in the log and no literature ideas until it
answers again, never a crash or a reflection kept waiting. While it is down,
calls fail at once; one attempt is made every RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from bot.config import ConfigError

log = logging.getLogger(__name__)
RETRY_SECONDS = 30.0  # while the server is down, how often one call tries it again (the rest fail at once)


class LiteratureServerDown(ConfigError):
    """The Chroma server did not answer (or answered with an error): the message names the key and the fix.

    `first` is true for the failure that began an outage: whoever carries on without the server logs that
    one (a batch job such as ingest stops with the message instead)."""

    def __init__(self, message: str, first: bool = False):
        super().__init__(message)
        self.first = first

    def log_once(self) -> None:
        if self.first:
            log.warning("%s: reflections go on without literature ideas until it answers", self)


def parse_server_url(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of an http(s)://host:port address (its form is checked by the config)."""
    parts = urlsplit(url)
    return parts.hostname or "", int(parts.port or 0), parts.scheme == "https"


class ChromaServer:
    """One collection on a Chroma server, opened on first use and opened again after a failure."""

    def __init__(self, url: str, collection: str, timeout: float, retry_seconds: float = RETRY_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.url = url.rstrip("/")
        self.name = collection
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._client = None
        self._collection = None
        self._down_since: float | None = None  # when the outage began; None while it answers
        self._last_try = 0.0

    def _error(self, what: str, first: bool = False) -> LiteratureServerDown:
        host, port, _ = parse_server_url(self.url)
        return LiteratureServerDown(
            f"retrieval.server_url: the Chroma server at {self.url} {what}; fix: start it (chroma run --path "
            f"DIR --host {host} --port {port}) or point retrieval.server_url at the running one, or set it to "
            "\"\" for the embedded index", first)

    @property
    def client(self):
        self.collection()
        return self._client

    def collection(self):
        """The collection, opening the connection when none is open; LiteratureServerDown if it is down."""
        with self._lock:
            if self._collection is not None:
                return self._collection
            now = self._clock()
            if self._down_since is not None and now - self._last_try < self.retry_seconds:
                raise self._error("is not answering (tried again every "
                                  f"{self.retry_seconds:.0f} s)")
            self._last_try = now
            try:
                self._collection = self._open()
            except Exception as exc:
                raise self._lost(exc) from None
            if self._down_since is not None:
                log.warning("retrieval.server_url: the Chroma server at %s answers again: literature ideas are "
                            "back", self.url)
                self._down_since = None
            return self._collection

    def _open(self):
        import chromadb
        import httpx
        from chromadb.config import Settings

        host, port, ssl = parse_server_url(self.url)
        old, self._client = self._client, None
        if old is not None:  # the client of a connection that failed: each HttpClient has its own HTTP pool
            try:
                old.close()
            except Exception:
                pass
        # HttpClient's first request (it checks the tenant) has no time limit: a hung server would hang us
        # here, so the heartbeat is asked first, within our timeout.
        httpx.get(f"{self.url}/api/v2/heartbeat", timeout=self.timeout).raise_for_status()
        client = chromadb.HttpClient(host=f"[{host}]" if ":" in host else host,  # an IPv6 address, bracketed
                                     port=port, ssl=ssl, settings=Settings(anonymized_telemetry=False))
        # chromadb sets no timeout on its HTTP session (httpx.Client(timeout=None)) and offers no setting
        # for one; without it a server that stops answering would keep a reflection waiting forever.
        session = getattr(getattr(client, "_server", None), "_session", None)
        if session is not None:
            session.timeout = httpx.Timeout(self.timeout)
        collection = client.get_or_create_collection(self.name, metadata={"hnsw:space": "cosine"},
                                                     embedding_function=None)
        self._client = client
        return collection

    def _lost(self, exc: Exception) -> LiteratureServerDown:
        """Mark the server down; the error is `first` only for the failure that began the outage."""
        self._collection = None
        first = self._down_since is None
        if first:
            self._down_since = self._clock()
        # The type only: an error's message could quote a request, and requests carry vectors of what
        # people wrote.
        return self._error(f"is not answering ({type(exc).__name__})", first)

    def call(self, method: str, *args, **kwargs):
        """A method of the collection, run on the server; any failure is LiteratureServerDown."""
        collection = self.collection()
        try:
            return getattr(collection, method)(*args, **kwargs)
        except Exception as exc:
            with self._lock:
                raise self._lost(exc) from None


class ServerCollection:
    """The few collection methods the index uses, each run through ChromaServer.call."""

    def __init__(self, server: ChromaServer):
        self.server = server

    def count(self) -> int:
        return self.server.call("count")

    def get(self, **kwargs):
        return self.server.call("get", **kwargs)

    def query(self, **kwargs):
        return self.server.call("query", **kwargs)

    def add(self, **kwargs):
        return self.server.call("add", **kwargs)

    def delete(self, **kwargs):
        return self.server.call("delete", **kwargs)
