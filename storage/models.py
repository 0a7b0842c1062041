"""The database schema as SQLAlchemy 2.x models. Text fields ending in _ct hold AES-GCM ciphertext.

The schema changes only through migrations in storage/migrations/versions; a
test checks that the migrations from blank produce exactly these tables.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String,
                        TypeDecorator, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timestamps with time zone everywhere: stored as UTC, always returned aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Spanner stores timestamps with a time zone")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    next_number: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserRole(Base):
    """A role a person holds (spanner, mentee, mentor, supervisor, admin); a person may hold several."""

    __tablename__ = "user_roles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)


class UserKey(Base):
    __tablename__ = "user_keys"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # 1: wrapped by the master key (before 0003); 2: wrapped by the user's own key-encryption key.
    scheme: Mapped[int] = mapped_column(Integer, default=2, server_default="1")


class EntryRow(Base):
    __tablename__ = "entries"
    # The index answers "how many entries, and when did they last change" (search's stamp) on its own.
    __table_args__ = (UniqueConstraint("user_id", "number", name="uq_entries_user_number"),
                      Index("ix_entries_user_updated", "user_id", "updated_at", "number"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    protocol: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    title_ct: Mapped[bytes] = mapped_column(LargeBinary)
    note_ct: Mapped[bytes] = mapped_column(LargeBinary)
    summary_ct: Mapped[bytes] = mapped_column(LargeBinary)
    tags_ct: Mapped[bytes] = mapped_column(LargeBinary)
    suggestion_ct: Mapped[bytes] = mapped_column(LargeBinary)
    vector_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    programme_week: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a check-in's week
    answers: Mapped[list["AnswerRow"]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", order_by="AnswerRow.position",
        passive_deletes=True)


class AnswerRow(Base):
    """One step's answer in a reflection: each kept separately, as the issue asks."""

    __tablename__ = "entry_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(40))
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    question_ct: Mapped[bytes] = mapped_column(LargeBinary)
    answer_ct: Mapped[bytes] = mapped_column(LargeBinary)
    followup_question_ct: Mapped[bytes] = mapped_column(LargeBinary)
    followup_answer_ct: Mapped[bytes] = mapped_column(LargeBinary)
    entry: Mapped[EntryRow] = relationship(back_populates="answers")


class ConversationState(Base):
    """A user's in-progress reflection and pending action, so both survive a restart."""

    __tablename__ = "conversation_state"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    state_ct: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invite(Base):
    """A single-use, expiring invitation. Only a hash of the code is stored."""

    __tablename__ = "invites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class InboxUpdate(Base):
    """A transport update stored durably before it is acknowledged, handled from here exactly once.

    Once handled, only the id stays (payload_ct is emptied): enough to recognise a redelivery.
    """

    __tablename__ = "inbox"
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class OutboxMessage(Base):
    """A reply waiting to be sent: kept until the transport confirms it, so none is dropped silently.

    Once sent, only the ids stay (payload_ct is emptied). A streamed message carries the update it
    answers (stream_of) and, once sent, Telegram's id for it (message_id).
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    stream_of: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ChatClaim(Base):
    """Which worker process handles a person's chat now, until when (storage.claims explains the lease).

    A row exists for every person who ever had an update stored; `owner` is empty while nobody holds it.
    """

    __tablename__ = "chat_claims"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), default="", server_default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Supervision(Base):
    """Which supervisor may be offered which spanner's shared entries (set by an admin)."""

    __tablename__ = "supervision"
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    spanner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Share(Base):
    """One entry shared by its author with one reader: a snapshot of what they agreed to show."""

    __tablename__ = "shares"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    viewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(10))  # "summary" or "full"
    labelled: Mapped[bool] = mapped_column(Boolean, default=False)  # names replaced by neutral labels
    content_ct: Mapped[bytes] = mapped_column(LargeBinary)  # under the owner's key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Comment(Base):
    """A supervisor's comment on a shared entry, or the author's answer; under the owner's key."""

    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessLog(Base):
    """Every read of a shared entry by someone other than its author."""

    __tablename__ = "access_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    entry_number: Mapped[int] = mapped_column(Integer)
    share_id: Mapped[int | None] = mapped_column(ForeignKey("shares.id", ondelete="SET NULL"), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Base):
    """A message for a user caused by someone else (a comment, an answer); under the recipient's key.

    `source_id` is whoever caused it: forgetting them removes the copies of their words
    still waiting in other people's notices. `kind` (checkin, note, comment, ...) holds no content.
    """

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True,
                                                  index=True)
    kind: Mapped[str] = mapped_column(String(16), default="", server_default="")
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class Pairing(Base):
    """A mentor and a mentee on a programme."""

    __tablename__ = "pairings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    mentee_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    programme: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MentoringMessage(Base):
    """A note between a mentor and a mentee in a pairing, either way; under the mentee's key."""

    __tablename__ = "mentoring_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pairing_id: Mapped[int] = mapped_column(ForeignKey("pairings.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Schedule(Base):
    """When someone wants their check-ins (or reminders): days and a time in their own time zone."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("user_id", "kind", name="uq_schedules_user_kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "checkin" or "reminder"
    days: Mapped[str] = mapped_column(String(32))  # "0,3": Monday and Thursday
    at: Mapped[str] = mapped_column(String(5))  # "09:30", local time
    timezone: Mapped[str] = mapped_column(String(64))
    next_slot: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """The ledger: one row per (person, kind, slot), so a slot goes out exactly once."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("user_id", "kind", "slot", name="uq_deliveries_user_kind_slot"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(12))  # delivered, missed, snoozed, skipped, answered
    week: Mapped[int | None] = mapped_column(Integer, nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it should go out (after snooze, quiet hours)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
