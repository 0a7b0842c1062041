"""Consent-based sharing: supervision links, shares, comments, the access log and notifications.

Everything a reader can see goes through one check, `_readable`: an active
(not revoked) share of an entry whose reader is this user. Shared content is a
snapshot the author approved, encrypted under the author's key; comments too,
so forgetting the author removes them with everything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import false as sql_false, func, select, true as sql_true
from sqlalchemy.orm import Session

from .crypto import field_aad, open_sealed, seal
from .journal import SqlJournal
from .models import AccessLog, Comment, EntryRow, Notification, Share, Supervision, User, utcnow


@dataclass(frozen=True)
class Reader:
    handle: str
    name: str
    role: str


@dataclass(frozen=True)
class ShareInfo:
    share_id: int
    number: int
    reader: str
    reader_role: str
    scope: str
    since: datetime


@dataclass(frozen=True)
class SharedItem:
    share_id: int
    owner: str
    owner_name: str
    number: int
    scope: str
    since: datetime
    content: str = ""
    comments: list[tuple[str, str, datetime]] = field(default_factory=list)  # (who, text, when)


class SharingStore:
    def __init__(self, journal: SqlJournal):
        self.journal = journal
        self._sessions = journal.sessions

    def _user(self, s: Session, handle: str) -> User | None:
        return self.journal._user(s, handle)

    def _seal(self, s: Session, owner: User, table: str, row_id: int, field_name: str, text: str) -> bytes:
        return seal(self.journal._key(s, owner), text.encode(), field_aad(owner.id, table, str(row_id), field_name))

    def _open(self, s: Session, owner: User, table: str, row_id: int, field_name: str, blob: bytes) -> str:
        return open_sealed(self.journal._key(s, owner), blob,
                           field_aad(owner.id, table, str(row_id), field_name)).decode()

    # ----- roles and supervision ----------------------------------------------------------

    def role(self, handle: str) -> str:
        with self._sessions() as s:
            user = self._user(s, handle)
            return user.role if user else "spanner"

    def supervise(self, supervisor: str, spanner: str) -> None:
        with self._sessions.begin() as s:
            sup, spn = self._user(s, supervisor), self._user(s, spanner)
            if sup is None or spn is None:
                raise LookupError("no such user")
            if sup.role not in ("supervisor", "admin"):
                raise ValueError(f"{supervisor} has the role {sup.role!r}, not supervisor")
            if s.get(Supervision, (sup.id, spn.id)) is None:
                s.add(Supervision(supervisor_id=sup.id, spanner_id=spn.id, created_at=utcnow()))

    def readers_for(self, owner: str) -> list[Reader]:
        """Who this person may share with: their supervisors."""
        with self._sessions() as s:
            user = self._user(s, owner)
            if user is None:
                return []
            rows = s.scalars(select(User).join(Supervision, Supervision.supervisor_id == User.id)
                             .where(Supervision.spanner_id == user.id, User.revoked_at.is_(None)))
            return [Reader(u.handle, u.display_name or u.handle, u.role) for u in rows]

    # ----- the author's side --------------------------------------------------------------

    def share(self, owner: str, number: int, reader: str, scope: str, labelled: bool, content: str) -> int:
        allowed = {r.handle for r in self.readers_for(owner)}  # before our write transaction opens
        with self._sessions.begin() as s:
            own, rdr = self._user(s, owner), self._user(s, reader)
            entry = s.scalar(select(EntryRow).where(EntryRow.user_id == own.id, EntryRow.number == number))
            if entry is None or rdr is None or reader not in allowed:
                raise PermissionError("cannot share that entry with that person")
            for old in s.scalars(select(Share).where(Share.entry_id == entry.id, Share.viewer_id == rdr.id,
                                                     Share.revoked_at.is_(None))):
                old.revoked_at = utcnow()  # one active share per entry and reader: the newest
            share = Share(entry_id=entry.id, owner_id=own.id, viewer_id=rdr.id, scope=scope, labelled=labelled,
                          content_ct=b"", created_at=utcnow())
            s.add(share)
            s.flush()
            share.content_ct = self._seal(s, own, "shares", share.id, "content", content)
            return share.id

    def unshare(self, owner: str, number: int) -> int:
        """Revoke every active share of this entry, at once. Returns how many."""
        with self._sessions.begin() as s:
            own = self._user(s, owner)
            rows = s.scalars(select(Share).join(EntryRow, EntryRow.id == Share.entry_id)
                             .where(Share.owner_id == own.id, EntryRow.number == number,
                                    Share.revoked_at.is_(None))).all()
            for row in rows:
                row.revoked_at = utcnow()
            return len(rows)

    def shares_of(self, owner: str) -> list[ShareInfo]:
        with self._sessions() as s:
            own = self._user(s, owner)
            if own is None:
                return []
            rows = s.execute(select(Share, EntryRow.number, User).join(EntryRow, EntryRow.id == Share.entry_id)
                             .join(User, User.id == Share.viewer_id)
                             .where(Share.owner_id == own.id, Share.revoked_at.is_(None))
                             .order_by(Share.created_at.desc())).all()
            return [ShareInfo(sh.id, num, u.display_name or u.handle, u.role, sh.scope, sh.created_at)
                    for sh, num, u in rows]

    def access_log(self, owner: str) -> list[tuple[str, str, int, datetime]]:
        """(reader name, reader role, entry number, when) for every read of this person's shared entries."""
        with self._sessions() as s:
            own = self._user(s, owner)
            if own is None:
                return []
            rows = s.execute(select(AccessLog, User).join(User, User.id == AccessLog.reader_id)
                             .where(AccessLog.owner_id == own.id).order_by(AccessLog.at.desc())).all()
            return [(u.display_name or u.handle, u.role, log.entry_number, log.at) for log, u in rows]

    # ----- the reader's side: everything passes _readable ---------------------------------

    def _readable(self, s: Session, viewer: User):
        """THE check: active shares whose reader is this user. Every reader command uses it."""
        return (select(Share, EntryRow.number, User).join(EntryRow, EntryRow.id == Share.entry_id)
                .join(User, User.id == Share.owner_id)
                .where(Share.viewer_id == viewer.id, Share.revoked_at.is_(None), User.revoked_at.is_(None),
                       # a reader whose access was removed sees nothing, on every front end, at once
                       sql_true() if viewer.revoked_at is None else sql_false()))

    def visible(self, viewer: str) -> list[SharedItem]:
        """What this reader may see (no content: reading it is logged through read())."""
        with self._sessions() as s:
            me = self._user(s, viewer)
            if me is None:
                return []
            rows = s.execute(self._readable(s, me).order_by(Share.created_at.desc())).all()
            return [SharedItem(sh.id, u.handle, u.display_name or u.handle, num, sh.scope, sh.created_at)
                    for sh, num, u in rows]

    def team(self, supervisor: str) -> list[tuple[str, int]]:
        """People this supervisor supervises, with how many entries each shares with them now."""
        with self._sessions() as s:
            me = self._user(s, supervisor)
            if me is None:
                return []
            people = s.scalars(select(User).join(Supervision, Supervision.spanner_id == User.id)
                               .where(Supervision.supervisor_id == me.id, User.revoked_at.is_(None))).all()
            shared = dict(s.execute(select(Share.owner_id, func.count()).where(
                Share.viewer_id == me.id, Share.revoked_at.is_(None)).group_by(Share.owner_id)).all())
            return [(u.display_name or u.handle, shared.get(u.id, 0)) for u in people]

    def read(self, viewer: str, share_id: int) -> SharedItem | None:
        """The shared snapshot and its comments, if this reader may see it; the read is logged."""
        with self._sessions.begin() as s:
            me = self._user(s, viewer)
            if me is None:
                return None
            row = s.execute(self._readable(s, me).where(Share.id == share_id)).first()
            if row is None:
                return None
            share, number, owner = row
            s.add(AccessLog(owner_id=owner.id, reader_id=me.id, entry_number=number, share_id=share.id, at=utcnow()))
            return SharedItem(share.id, owner.handle, owner.display_name or owner.handle, number, share.scope,
                              share.created_at, self._open(s, owner, "shares", share.id, "content", share.content_ct),
                              self._comments(s, share, owner))

    def _comments(self, s: Session, share: Share, owner: User) -> list[tuple[str, str, datetime]]:
        out = []
        for c in s.scalars(select(Comment).where(Comment.share_id == share.id).order_by(Comment.id)):
            who = "you" if c.author_id == owner.id else "supervisor"
            out.append((who, self._open(s, owner, "comments", c.id, "body", c.body_ct), c.created_at))
        return out

    def comment(self, author: str, share_id: int, text: str) -> tuple[str, int] | None:
        """A comment by the reader or the author; returns (the other person's handle, entry number)."""
        with self._sessions.begin() as s:
            me = self._user(s, author)
            share = s.get(Share, share_id)
            if me is None or share is None or share.revoked_at is not None:
                return None
            if me.id not in (share.viewer_id, share.owner_id):
                return None
            owner = s.get(User, share.owner_id)
            c = Comment(share_id=share.id, author_id=me.id, body_ct=b"", created_at=utcnow())
            s.add(c)
            s.flush()
            c.body_ct = self._seal(s, owner, "comments", c.id, "body", text)
            other = s.get(User, share.viewer_id if me.id == share.owner_id else share.owner_id)
            number = s.scalar(select(EntryRow.number).where(EntryRow.id == share.entry_id))
            return other.handle, number

    def comments_for_owner(self, owner: str) -> list[tuple[int, str, str, datetime]]:
        """(entry number, who, text, when) on this person's shares, for their export."""
        with self._sessions() as s:
            own = self._user(s, owner)
            if own is None:
                return []
            out = []
            for share, number in s.execute(select(Share, EntryRow.number).join(EntryRow, EntryRow.id == Share.entry_id)
                                           .where(Share.owner_id == own.id)).all():
                out += [(number, who, text, when) for who, text, when in self._comments(s, share, own)]
            return out

    # ----- notifications ------------------------------------------------------------------

    def notify(self, handle: str, payload: dict) -> None:
        with self._sessions.begin() as s:
            user = self._user(s, handle)
            if user is not None:
                add_notification(self.journal, s, user, payload)

    def take_notifications(self, handle: str) -> list[dict]:
        """Undelivered notifications for this user, marked delivered."""
        with self._sessions.begin() as s:
            user = self._user(s, handle)
            if user is None:
                return []
            rows = s.scalars(select(Notification).where(Notification.user_id == user.id,
                                                        Notification.delivered_at.is_(None))
                             .order_by(Notification.id)).all()
            out = []
            for n in rows:
                out.append(json.loads(self._open(s, user, "notifications", n.id, "payload", n.payload_ct)))
                n.delivered_at = utcnow()
            return out

    def pending_notification_handles(self) -> list[str]:
        with self._sessions() as s:
            return list(s.scalars(select(User.handle).join(Notification, Notification.user_id == User.id)
                                  .where(Notification.delivered_at.is_(None)).distinct()))


def add_notification(journal: SqlJournal, s: Session, user: User, payload: dict) -> None:
    """Queue a message for a person inside the caller's transaction, sealed under their key."""
    n = Notification(user_id=user.id, payload_ct=b"", created_at=utcnow())
    s.add(n)
    s.flush()
    n.payload_ct = seal(journal._key(s, user), json.dumps(payload).encode(),
                        field_aad(user.id, "notifications", str(n.id), "payload"))
