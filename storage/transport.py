"""The durable inbox and outbox of a chat transport.

An update is stored (encrypted under its sender's key) before it is
acknowledged to Telegram, and handled from here; the update id is the primary
key, so a redelivered update is recognised. Replies wait in the outbox until
the transport confirms them, so a reply is never dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select

from .base import Cipher, Store
from .models import InboxUpdate, OutboxMessage, User, utcnow
from .notices import drop_notices, waiting


@dataclass(frozen=True)
class Pending:
    id: int
    handle: str
    chat_id: int
    payload: dict


class TransportStore(Store):
    # ----- inbox ------------------------------------------------------------------------

    def store_updates(self, items: list[tuple[int, str, dict]]) -> int:
        """Store (update_id, handle, payload) in one transaction; duplicates are skipped. Returns new count."""
        new = 0
        with self.sessions.begin() as s:
            for update_id, handle, payload in items:
                if s.get(InboxUpdate, update_id) is not None:
                    continue
                user = self.person(s, handle)
                if user is None:
                    continue
                blob = self.cipher(s, user).seal("inbox", update_id, "payload", json.dumps(payload))
                s.add(InboxUpdate(update_id=update_id, user_id=user.id, payload_ct=blob, received_at=utcnow()))
                new += 1
        return new

    def last_update_id(self) -> int | None:
        with self.sessions() as s:
            return s.scalar(select(func.max(InboxUpdate.update_id)))

    def pending_handles(self) -> list[str]:
        """Users with stored updates still to handle (no decryption needed)."""
        with self.sessions() as s:
            return list(s.scalars(select(User.handle).join(InboxUpdate, InboxUpdate.user_id == User.id)
                                  .where(InboxUpdate.handled_at.is_(None)).distinct()))

    def pending_updates(self, handle: str | None = None, limit: int = 500) -> list[Pending]:
        with self.sessions() as s:
            query = (select(InboxUpdate, User).join(User, User.id == InboxUpdate.user_id)
                     .where(InboxUpdate.handled_at.is_(None)))
            if handle is not None:
                query = query.where(User.handle == handle)
            rows = s.execute(query.order_by(InboxUpdate.update_id).limit(limit)).all()
            out = []
            for row, user in rows:
                payload = json.loads(self.cipher(s, user).open("inbox", row.update_id, "payload", row.payload_ct))
                out.append(Pending(row.update_id, user.handle, 0, payload))
            return out

    def finish_update(self, update_id: int, replies: list[tuple[int, dict]]) -> bool:
        """Mark an update handled and queue its replies, in one transaction. False if the update is gone."""
        with self.sessions.begin() as s:
            row = s.get(InboxUpdate, update_id)
            if row is None:
                return False
            if row.handled_at is not None:
                return True
            user = s.get(User, row.user_id)
            cipher = self.cipher(s, user)
            row.handled_at = utcnow()
            for chat_id, payload in replies:
                self._queue(s, cipher, user, chat_id, payload)
        return True

    @staticmethod
    def _queue(s, cipher: Cipher, user: User, chat_id: int, payload: dict) -> None:
        msg = OutboxMessage(user_id=user.id, chat_id=chat_id, payload_ct=b"", created_at=utcnow(), attempts=0)
        s.add(msg)
        s.flush()
        msg.payload_ct = cipher.seal("outbox", msg.id, "payload", json.dumps(payload))

    def queue(self, handle: str, chat_id: int, payload: dict) -> None:
        """Queue a message not caused by an update (a check-in, a note from a mentor)."""
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            if user is None:
                raise LookupError(f"no person {handle!r}")
            self._queue(s, self.cipher(s, user), user, chat_id, payload)

    def queue_notices(self, handle: str, chat_id: int) -> int:
        """Move the notices waiting for this person into the outbox, in one transaction: none lost or doubled."""
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            notices = waiting(self, s, user) if user is not None else []
            if not notices:
                return 0
            cipher = self.cipher(s, user)
            for notice in notices:
                self._queue(s, cipher, user, chat_id, {"text": notice.payload["text"],
                                                       "choices": notice.payload.get("choices", [])})
            drop_notices(s, user, [n.id for n in notices])
            return len(notices)

    # ----- outbox -----------------------------------------------------------------------

    def pending_chats(self) -> list[int]:
        with self.sessions() as s:
            return list(s.scalars(select(OutboxMessage.chat_id).where(OutboxMessage.sent_at.is_(None))
                                  .group_by(OutboxMessage.chat_id).order_by(func.min(OutboxMessage.id))))

    def pending_outbox(self, chat_id: int | None = None, limit: int = 1000) -> list[Pending]:
        with self.sessions() as s:
            query = (select(OutboxMessage, User).join(User, User.id == OutboxMessage.user_id)
                     .where(OutboxMessage.sent_at.is_(None)))
            if chat_id is not None:
                query = query.where(OutboxMessage.chat_id == chat_id)
            rows = s.execute(query.order_by(OutboxMessage.id).limit(limit)).all()
            return [Pending(m.id, u.handle, m.chat_id,
                            json.loads(self.cipher(s, u).open("outbox", m.id, "payload", m.payload_ct)))
                    for m, u in rows]

    def mark_sent(self, outbox_id: int) -> None:
        with self.sessions.begin() as s:
            msg = s.get(OutboxMessage, outbox_id)
            if msg is not None:
                msg.sent_at = utcnow()

    def count_attempt(self, outbox_id: int) -> int:
        with self.sessions.begin() as s:
            msg = s.get(OutboxMessage, outbox_id)
            if msg is None:
                return 0
            msg.attempts += 1
            return msg.attempts

