"""The durable inbox and outbox of a chat transport.

An update is stored (encrypted under its sender's key) before it is
acknowledged to Telegram, and handled from here; the update id is the primary
key, so a redelivered update is recognised. Replies wait in the outbox until
the transport confirms them, so a reply is never dropped silently.

Nothing is kept longer than redelivery needs: a handled update and a sent
message keep their ids and drop their text in the same transaction that makes
the text unnecessary (handled, or confirmed sent).

Streaming goes through the outbox too, so a chat's messages stay in order: a
partial text is a row tagged with the update it answers (stream_of), later
partials replace it while it waits, and Telegram's id for the message is kept
once sent. When the update is finished its replies settle the stream: the one
reply becomes an edit of the partial message, or the partial message is
deleted before several replies. A crash mid-stream leaves the update unhandled,
so it is handled again and its replies complete (or delete) the old message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select

from .base import Cipher, Store
from .db import claim, insert_new
from .models import InboxUpdate, OutboxMessage, User, utcnow
from .notices import drop_notices, waiting

PRUNED = b""  # what a handled update or a sent message keeps of its text

@dataclass(frozen=True)
class Pending:
    id: int
    handle: str
    chat_id: int
    payload: dict
    stream_of: int | None = None


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
                # ON CONFLICT DO NOTHING: two ingress processes on PostgreSQL may store the same update at once.
                new += s.scalar(insert_new(s, InboxUpdate.__table__).returning(InboxUpdate.update_id).values(
                    update_id=update_id, user_id=user.id, payload_ct=blob, received_at=utcnow())) is not None
        return new

    def last_update_id(self) -> int | None:
        with self.sessions() as s:
            return s.scalar(select(func.max(InboxUpdate.update_id)))

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
            row = s.scalar(claim(select(InboxUpdate).where(InboxUpdate.update_id == update_id)))
            if row is None:  # gone, or (PostgreSQL) another process is finishing it right now
                return s.get(InboxUpdate, update_id) is not None
            if row.handled_at is not None:
                return True
            user = s.get(User, row.user_id)
            cipher = self.cipher(s, user)
            row.handled_at = utcnow()
            row.payload_ct = PRUNED  # handled: only the id is needed now, to recognise a redelivery
            streamed = self._stream_rows(s, update_id)
            for partial in streamed:
                if partial.sent_at is None:  # the final text is here: no need to show a partial first
                    partial.sent_at, partial.payload_ct = utcnow(), PRUNED
            replies = list(replies)
            if streamed:
                replies = _settle(replies, streamed[0].chat_id)
            for chat_id, payload in replies:
                self._queue(s, cipher, user, chat_id, payload,
                            update_id if streamed and "settle" in payload else None)
        return True

    @staticmethod
    def _stream_rows(s, update_id: int) -> list[OutboxMessage]:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.stream_of == update_id)
                              .order_by(OutboxMessage.id)))

    @staticmethod
    def _queue(s, cipher: Cipher, user: User, chat_id: int, payload: dict, stream_of: int | None = None) -> None:
        msg = OutboxMessage(user_id=user.id, chat_id=chat_id, payload_ct=b"", created_at=utcnow(), attempts=0,
                            stream_of=stream_of)
        s.add(msg)
        s.flush()
        msg.payload_ct = cipher.seal("outbox", msg.id, "payload", json.dumps(payload))

    def stream(self, handle: str, chat_id: int, update_id: int, text: str, draft: bool = False) -> None:
        """Queue (or, while it still waits, replace) the partial text of the reply to this update."""
        payload = {"text": text, "partial": "draft" if draft else "message"}
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            if user is None:
                return
            inbox = s.get(InboxUpdate, update_id)
            if inbox is None or inbox.handled_at is not None:
                return  # finished (or forgotten) meanwhile: the final text settles it
            cipher = self.cipher(s, user)
            partial = s.scalar(select(OutboxMessage).where(OutboxMessage.stream_of == update_id,
                                                             OutboxMessage.sent_at.is_(None)))
            if partial is None:
                self._queue(s, cipher, user, chat_id, payload, update_id)
            else:
                partial.payload_ct = cipher.seal("outbox", partial.id, "payload", json.dumps(payload))

    def stream_message_id(self, update_id: int) -> int | None:
        """Telegram's id of the message streamed for this update, once one was sent."""
        with self.sessions() as s:
            return s.scalar(select(OutboxMessage.message_id).where(OutboxMessage.stream_of == update_id,
                                                                   OutboxMessage.message_id.is_not(None))
                            .order_by(OutboxMessage.id).limit(1))

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
                            json.loads(self.cipher(s, u).open("outbox", m.id, "payload", m.payload_ct)), m.stream_of)
                    for m, u in rows]

    def mark_sent(self, outbox_id: int, message_id: int | None = None) -> None:
        """Confirmed by the transport: keep the ids (and Telegram's message id), drop the text."""
        with self.sessions.begin() as s:
            msg = s.get(OutboxMessage, outbox_id)
            if msg is not None:
                msg.sent_at = msg.sent_at or utcnow()
                msg.payload_ct = PRUNED
                if message_id is not None:
                    msg.message_id = message_id

    def count_attempt(self, outbox_id: int) -> int:
        with self.sessions.begin() as s:
            msg = s.get(OutboxMessage, outbox_id)
            if msg is None:
                return 0
            msg.attempts += 1
            return msg.attempts


def _settle(replies: list[tuple[int, dict]], chat_id: int) -> list[tuple[int, dict]]:
    """The replies to a streamed update: one becomes an edit of the partial message; several (or none)
    first delete it, so the chat reads in order."""
    if len(replies) == 1 and "document" not in replies[0][1]:
        return [(replies[0][0], dict(replies[0][1], settle="edit"))]
    return [(chat_id, {"settle": "delete", "text": ""})] + replies
