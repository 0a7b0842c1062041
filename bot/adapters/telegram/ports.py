"""The Telegram adapter's port to chat claims: how a worker process takes a chat, keeps it, and gives it back.

storage.claims implements it over the shared database (SQLite or PostgreSQL);
the adapter needs only these four calls, so it imports no database library.
"""

from __future__ import annotations

from typing import Protocol


class ChatClaims(Protocol):
    def claim(self, limit: int) -> list[str]:
        """Up to `limit` chats (by handle) with updates waiting that no other live worker holds, now this one's."""

    def renew(self) -> int:
        """Extend this worker's claims; how many it holds."""

    def holds(self, handle: str) -> bool:
        """Whether this worker still holds the chat."""

    def release(self, handle: str | None = None) -> None:
        """Give one chat back, or all of this worker's."""
