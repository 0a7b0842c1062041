"""Notices: messages for a person caused by someone else or by their schedule, waiting to be shown.

A notice (a check-in, a mentor's note, a supervisor's comment, "Sue now
supervises you") is sealed under its recipient's key and waits here until a
transport shows it: the console with the person's next message, Telegram at
once. Showing it removes it, in the same transaction as whatever carried it
(the engine's commit for the event, or the outbox row Telegram sends). A notice
records who caused it, so forgetting that person also removes their words from
the notices still waiting for others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .base import Store
from .models import Notification, User, utcnow


@dataclass(frozen=True)
class Notice:
    id: int
    kind: str
    payload: dict


def add_notice(store: Store, s: Session, person: User, payload: dict, kind: str = "",
               source: User | None = None) -> None:
    """Queue a notice for a person inside the caller's transaction, sealed under their key."""
    n = Notification(user_id=person.id, payload_ct=b"", created_at=utcnow(), kind=kind[:16],
                     source_id=source.id if source is not None else None)
    s.add(n)
    s.flush()
    n.payload_ct = store.cipher(s, person).seal("notifications", n.id, "payload", json.dumps(payload))


def waiting(store: Store, s: Session, person: User) -> list[Notice]:
    """This person's notices, oldest first (decrypted; nothing is changed)."""
    rows = s.scalars(select(Notification).where(Notification.user_id == person.id,
                                                Notification.delivered_at.is_(None))
                     .order_by(Notification.id)).all()
    if not rows:
        return []
    cipher = store.cipher(s, person)
    return [Notice(n.id, n.kind, json.loads(cipher.open("notifications", n.id, "payload", n.payload_ct)))
            for n in rows]


def drop_notices(s: Session, person: User, ids: list[int]) -> None:
    """Shown: remove them (only this person's), inside the caller's transaction."""
    if ids:
        s.execute(delete(Notification).where(Notification.user_id == person.id, Notification.id.in_(ids)))


class NoticeStore(Store):
    """The Notices port: queue a notice for someone, read what waits for someone."""

    def notify(self, handle: str, payload: dict, kind: str = "", source: str | None = None) -> bool:
        with self.sessions.begin() as s:
            person = self.person(s, handle)
            if person is None:
                return False
            add_notice(self, s, person, payload, kind, self.person(s, source) if source else None)
            return True

    def pending(self, handle: str) -> list[Notice]:
        """What waits for this person; the caller removes them when shown (drop_notices or take)."""
        with self.sessions() as s:
            person = self.person(s, handle)
            return waiting(self, s, person) if person is not None else []

    def take(self, handle: str) -> list[dict]:
        """What waits for this person, removed as it is handed over (for callers that show it at once)."""
        with self.sessions.begin() as s:
            person = self.person(s, handle)
            if person is None:
                return []
            notices = waiting(self, s, person)
            drop_notices(s, person, [n.id for n in notices])
            return [n.payload for n in notices]

    def pending_handles(self) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(User.handle).join(Notification, Notification.user_id == User.id)
                                  .where(Notification.delivered_at.is_(None)).distinct()))
