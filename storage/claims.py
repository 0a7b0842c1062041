"""Chat claims: which worker process handles a person's chat now, so each chat stays in order across workers.

Several `spanner telegram --worker` processes share one inbox. A worker claims
a person's chat (all their stored updates) for a lease of a few seconds, renews
the lease while it works, and releases the chat once what it claimed is handled.
One owner per chat at a time keeps that chat's updates in order; different
chats are claimed by different workers and run in parallel.

A worker that dies stops renewing: its claims expire and another worker takes
the chats. On the same host that wait is skipped: an owner is named "host pid
token", and a claim whose process is gone (killed with SIGKILL, say) may be
taken at once. The update it was handling was not marked handled, so it is
handled again; the engine recognises an event it already committed by its id
and answers with the same replies (bot.engine.unit), and the replies are queued
in the same transaction that marks the update handled (storage.transport), so
nothing is lost or queued twice.

The claim is one transaction on both databases. On SQLite every transaction
is BEGIN IMMEDIATE (storage.db), so claims are serialised. On PostgreSQL the
claim rows are read with FOR UPDATE SKIP LOCKED: two workers claiming at the
same moment skip each other's rows instead of waiting or overlapping, and the
lease condition is checked again on the row each one locked.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import exists, func, literal, or_, select, update

from .base import Store
from .db import claim, insert_new
from .models import ChatClaim, InboxUpdate, User, utcnow

NOBODY = ""  # the owner of a chat nobody holds
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # the expiry of a claim nobody holds


def owner_name() -> str:
    """This process as an owner: its host and pid (to see whether it still runs) and a random token."""
    return f"{socket.gethostname()} {os.getpid()} {secrets.token_hex(4)}"


def process_gone(owner: str, host: str | None = None) -> bool:
    """True when `owner` is a process on this host that no longer runs (or is a zombie)."""
    parts = owner.split(" ")
    if len(parts) != 3 or parts[0] != (host or socket.gethostname()) or not parts[1].isdigit():
        return False  # another host (or nobody): only its lease's expiry tells
    pid = int(parts[1])
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")  # dead, not yet reaped
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class ChatClaims(Store):
    """The claims of one worker process (its owner name), over the shared database."""

    def __init__(self, over: Store, lease_seconds: float = 30.0, owner: str | None = None,
                 clock: Callable[[], datetime] = utcnow):
        super().__init__(over)
        self.owner = owner or owner_name()
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        # Chats this worker claimed or renewed less than half a lease ago (by the clock the leases use):
        # certainly still its own, so `holds` needs no query for them.
        self._sure_until: dict[str, datetime] = {}

    def _sure(self, handles: list[str], since: datetime) -> None:
        for handle in handles:
            self._sure_until[handle] = since + self.lease / 2

    def claim(self, limit: int) -> list[str]:
        """Claim up to `limit` chats with updates waiting (oldest first) that nobody else holds.

        Returns the handles claimed, including chats this worker already held that have updates waiting.
        """
        if limit <= 0:
            return []
        started = self.clock()
        with self.sessions.begin() as s:
            now = self.clock()
            self._add_missing_rows(s)
            # From the updates still waiting (a short, indexed list), not from every person's history.
            waiting = (select(InboxUpdate.user_id, func.min(InboxUpdate.update_id).label("first"))
                       .where(InboxUpdate.handled_at.is_(None)).group_by(InboxUpdate.user_id).subquery())
            free = [ChatClaim.expires_at <= now, ChatClaim.owner == self.owner]
            gone = [o for o in s.scalars(select(ChatClaim.owner).where(ChatClaim.expires_at > now,
                                                                       ChatClaim.owner != self.owner,
                                                                       ChatClaim.owner != NOBODY).distinct())
                    if process_gone(o)]
            if gone:
                free.append(ChatClaim.owner.in_(gone))
            # PostgreSQL: rows another worker is claiming are skipped, not waited for (storage.db.claim).
            query = (select(ChatClaim.user_id).join(waiting, waiting.c.user_id == ChatClaim.user_id)
                     .where(or_(*free)).order_by(waiting.c.first).limit(limit))
            ids = list(s.scalars(claim(query, of=ChatClaim)))
            if not ids:
                return []
            s.execute(update(ChatClaim).where(ChatClaim.user_id.in_(ids))
                      .values(owner=self.owner, expires_at=now + self.lease))
            handles = list(s.scalars(select(User.handle).where(User.id.in_(ids))))
        self._sure(handles, started)
        return handles

    def _add_missing_rows(self, s) -> None:
        """A claim row for every person with updates waiting (insert-if-absent, safe when two race)."""
        missing = (select(InboxUpdate.user_id, literal(NOBODY, ChatClaim.owner.type),
                          literal(EPOCH, ChatClaim.expires_at.type))
                   .where(InboxUpdate.handled_at.is_(None),
                          ~exists().where(ChatClaim.user_id == InboxUpdate.user_id))
                   .distinct())
        s.execute(insert_new(s, ChatClaim.__table__).from_select(["user_id", "owner", "expires_at"], missing))

    def renew(self) -> int:
        """Extend the lease of every chat this worker holds; how many it holds."""
        started = self.clock()
        with self.sessions.begin() as s:
            ids = list(s.scalars(update(ChatClaim).where(ChatClaim.owner == self.owner)
                                 .values(expires_at=self.clock() + self.lease).returning(ChatClaim.user_id)))
            handles = list(s.scalars(select(User.handle).where(User.id.in_(ids)))) if ids else []
        self._sure_until = {}
        self._sure(handles, started)
        return len(handles)

    def holds(self, handle: str) -> bool:
        """Whether this worker still holds the chat (its lease was not taken over)."""
        if handle in self._sure_until and self._sure_until[handle] > self.clock():
            return True
        with self.sessions() as s:
            return s.scalar(select(ChatClaim.user_id).join(User, User.id == ChatClaim.user_id)
                            .where(User.handle == handle, ChatClaim.owner == self.owner,
                                   ChatClaim.expires_at > self.clock())) is not None

    def release(self, handle: str | None = None) -> None:
        """Give a chat back (or, without a handle, every chat this worker holds)."""
        with self.sessions.begin() as s:
            query = update(ChatClaim).where(ChatClaim.owner == self.owner)
            if handle is not None:
                query = query.where(ChatClaim.user_id == select(User.id).where(User.handle == handle)
                                    .scalar_subquery())
            s.execute(query.values(owner=NOBODY, expires_at=EPOCH))
        if handle is None:
            self._sure_until.clear()
        else:
            self._sure_until.pop(handle, None)
