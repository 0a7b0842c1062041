"""Consent-based sharing: supervision links, shares, comment threads and the access log.

Everything a reader can see goes through one check, `_readable`: an active
(not revoked) share of an entry whose reader is this user. Shared content is a
snapshot the author approved, encrypted under the author's key; comments too,
so forgetting the author removes them with everything else. Comments belong to
the entry: `/show` gives its author the whole thread, across every time it was
shared, and the reader sees the thread of their own shares of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import false as sql_false, func, select, true as sql_true
from sqlalchemy.orm import Session

from .base import Store, name_of
from .db import insert_new
from .models import AccessLog, Comment, EntryRow, Share, Supervision, User, utcnow
from .people import has_role, roles_of

READER_ROLES = ("supervisor", "admin")


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
class Said:
    """One message in a thread: who wrote it (their name, and whether it was the person asking), what, when."""

    name: str
    mine: bool
    text: str
    when: datetime


@dataclass(frozen=True)
class SharedItem:
    share_id: int
    owner: str
    owner_name: str
    number: int
    scope: str
    since: datetime
    content: str = ""
    thread: list[Said] = field(default_factory=list)


@dataclass(frozen=True)
class Posted:
    """A comment or answer just written: who should hear of it, on which entry, and the share's id."""

    recipient: str
    number: int
    share_id: int
    by_reader: bool


@dataclass(frozen=True)
class Latest:
    """The newest thing someone else said to this person in a thread: which thread, and when."""

    share_id: int
    number: int
    name: str
    when: datetime


def _reader_role(s: Session, user: User) -> str:
    roles = roles_of(s, user)
    return "supervisor" if "supervisor" in roles else next((r for r in roles if r in READER_ROLES), "supervisor")


class SharingStore(Store):
    # ----- supervision ----------------------------------------------------------------------

    def supervise(self, supervisor: str, spanner: str) -> bool:
        """Link a supervisor to a spanner; True if the link is new."""
        with self.sessions.begin() as s:
            sup, spn = self.person(s, supervisor), self.person(s, spanner)
            if sup is None or spn is None:
                raise LookupError(f"no person {supervisor if sup is None else spanner!r}")
            if not has_role(s, sup, *READER_ROLES):
                raise ValueError(f"{supervisor} holds {', '.join(roles_of(s, sup))}, not supervisor")
            return s.scalar(insert_new(s, Supervision.__table__).returning(Supervision.spanner_id).values(
                supervisor_id=sup.id, spanner_id=spn.id, created_at=utcnow())) is not None

    def readers_for(self, owner: str) -> list[Reader]:
        """Who this person may share with: their supervisors."""
        with self.sessions() as s:
            user = self.person(s, owner)
            if user is None:
                return []
            rows = s.scalars(select(User).join(Supervision, Supervision.supervisor_id == User.id)
                             .where(Supervision.spanner_id == user.id, User.revoked_at.is_(None)))
            return [Reader(u.handle, name_of(u), _reader_role(s, u)) for u in rows]

    def is_reader(self, handle: str) -> bool:
        with self.sessions() as s:
            user = self.person(s, handle)
            return user is not None and has_role(s, user, *READER_ROLES)

    # ----- the author's side --------------------------------------------------------------

    def share(self, owner: str, number: int, reader: str, scope: str, labelled: bool, content: str) -> int:
        allowed = {r.handle for r in self.readers_for(owner)}  # before our write transaction opens
        with self.sessions.begin() as s:
            own, rdr = self.person(s, owner), self.person(s, reader)
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
            share.content_ct = self.cipher(s, own).seal("shares", share.id, "content", content)
            return share.id

    def unshare(self, owner: str, number: int) -> int:
        """Revoke every active share of this entry, at once. Returns how many."""
        with self.sessions.begin() as s:
            own = self.person(s, owner)
            rows = s.scalars(select(Share).join(EntryRow, EntryRow.id == Share.entry_id)
                             .where(Share.owner_id == own.id, EntryRow.number == number,
                                    Share.revoked_at.is_(None))).all()
            for row in rows:
                row.revoked_at = utcnow()
            return len(rows)

    def shares_of(self, owner: str) -> list[ShareInfo]:
        with self.sessions() as s:
            own = self.person(s, owner)
            if own is None:
                return []
            rows = s.execute(select(Share, EntryRow.number, User).join(EntryRow, EntryRow.id == Share.entry_id)
                             .join(User, User.id == Share.viewer_id)
                             .where(Share.owner_id == own.id, Share.revoked_at.is_(None))
                             .order_by(Share.created_at.desc())).all()
            return [ShareInfo(sh.id, num, name_of(u), _reader_role(s, u), sh.scope, sh.created_at)
                    for sh, num, u in rows]

    def access_log(self, owner: str) -> list[tuple[str, str, int, datetime]]:
        """(reader name, reader role, entry number, when) for every read of this person's shared entries."""
        with self.sessions() as s:
            own = self.person(s, owner)
            if own is None:
                return []
            rows = s.execute(select(AccessLog, User).join(User, User.id == AccessLog.reader_id)
                             .where(AccessLog.owner_id == own.id).order_by(AccessLog.at.desc())).all()
            return [(name_of(u), _reader_role(s, u), log.entry_number, log.at) for log, u in rows]

    def thread(self, owner: str, number: int) -> list[Said]:
        """Every comment and answer on this entry, oldest first, whichever time it was shared."""
        with self.sessions() as s:
            own = self.person(s, owner)
            if own is None:
                return []
            shares = s.scalars(select(Share).join(EntryRow, EntryRow.id == Share.entry_id)
                               .where(Share.owner_id == own.id, EntryRow.number == number)).all()
            return self._said(s, shares, own, own)

    # ----- the reader's side: everything passes _readable ---------------------------------

    @staticmethod
    def _readable(viewer: User):
        """THE check: active shares whose reader is this user. Every reader command uses it."""
        return (select(Share, EntryRow.number, User).join(EntryRow, EntryRow.id == Share.entry_id)
                .join(User, User.id == Share.owner_id)
                .where(Share.viewer_id == viewer.id, Share.revoked_at.is_(None), User.revoked_at.is_(None),
                       # a reader whose access was removed sees nothing, on every front end, at once
                       sql_true() if viewer.revoked_at is None else sql_false()))

    def visible(self, viewer: str) -> list[SharedItem]:
        """What this reader may see (no content: reading it is logged through read())."""
        with self.sessions() as s:
            me = self.person(s, viewer)
            if me is None:
                return []
            rows = s.execute(self._readable(me).order_by(Share.created_at.desc())).all()
            return [SharedItem(sh.id, u.handle, name_of(u), num, sh.scope, sh.created_at) for sh, num, u in rows]

    def team(self, supervisor: str) -> list[tuple[str, int]]:
        """People this supervisor supervises, with how many entries each shares with them now."""
        with self.sessions() as s:
            me = self.person(s, supervisor)
            if me is None:
                return []
            people = s.scalars(select(User).join(Supervision, Supervision.spanner_id == User.id)
                               .where(Supervision.supervisor_id == me.id, User.revoked_at.is_(None))).all()
            shared = dict(s.execute(select(Share.owner_id, func.count()).where(
                Share.viewer_id == me.id, Share.revoked_at.is_(None)).group_by(Share.owner_id)).all())
            return [(name_of(u), shared.get(u.id, 0)) for u in people]

    def read(self, viewer: str, share_id: int) -> SharedItem | None:
        """The shared snapshot and its thread, if this reader may see it; the read is logged."""
        with self.sessions.begin() as s:
            me = self.person(s, viewer)
            if me is None:
                return None
            row = s.execute(self._readable(me).where(Share.id == share_id)).first()
            if row is None:
                return None
            share, number, owner = row
            s.add(AccessLog(owner_id=owner.id, reader_id=me.id, entry_number=number, share_id=share.id, at=utcnow()))
            # The thread of this entry between this author and this reader, across re-shares.
            mine = s.scalars(select(Share).where(Share.entry_id == share.entry_id, Share.viewer_id == me.id)).all()
            return SharedItem(share.id, owner.handle, name_of(owner), number, share.scope, share.created_at,
                              self.cipher(s, owner).open("shares", share.id, "content", share.content_ct),
                              self._said(s, mine, owner, me))

    def _said(self, s: Session, shares: list[Share], owner: User, me: User) -> list[Said]:
        if not shares:
            return []
        cipher = self.cipher(s, owner)
        rows = s.execute(select(Comment, User).join(User, User.id == Comment.author_id)
                         .where(Comment.share_id.in_([sh.id for sh in shares])).order_by(Comment.id)).all()
        return [Said(name_of(u), u.id == me.id, cipher.open("comments", c.id, "body", c.body_ct), c.created_at)
                for c, u in rows]

    # ----- comments -------------------------------------------------------------------------

    def comment(self, author: str, share_id: int, text: str) -> Posted | None:
        """A comment by the reader or an answer by the author, kept with the entry under the author's key."""
        with self.sessions.begin() as s:
            me = self.person(s, author)
            share = s.get(Share, share_id)
            if me is None or share is None or share.revoked_at is not None:
                return None
            if me.id not in (share.viewer_id, share.owner_id):
                return None
            owner = s.get(User, share.owner_id)
            c = Comment(share_id=share.id, author_id=me.id, body_ct=b"", created_at=utcnow())
            s.add(c)
            s.flush()
            c.body_ct = self.cipher(s, owner).seal("comments", c.id, "body", text)
            other = s.get(User, share.viewer_id if me.id == share.owner_id else share.owner_id)
            number = s.scalar(select(EntryRow.number).where(EntryRow.id == share.entry_id))
            return Posted(other.handle, number, share.id, me.id == share.viewer_id)

    def other_party(self, handle: str, share_id: int) -> str | None:
        """The name of the other person on an active share, if this person is its author or reader."""
        with self.sessions() as s:
            me, share = self.person(s, handle), s.get(Share, share_id)
            if me is None or share is None or share.revoked_at is not None:
                return None
            if me.id not in (share.viewer_id, share.owner_id):
                return None
            return name_of(s.get(User, share.viewer_id if me.id == share.owner_id else share.owner_id))

    def latest_to(self, handle: str, number: int | None = None) -> Latest | None:
        """The newest comment someone else made in this person's active threads (on their entry #number)."""
        with self.sessions() as s:
            me = self.person(s, handle)
            if me is None:
                return None
            query = (select(Comment, Share, EntryRow.number, User).join(Share, Share.id == Comment.share_id)
                     .join(EntryRow, EntryRow.id == Share.entry_id).join(User, User.id == Comment.author_id)
                     .where(Share.revoked_at.is_(None), Comment.author_id != me.id,
                            (Share.owner_id == me.id) | (Share.viewer_id == me.id)))
            if number is not None:
                query = query.where(Share.owner_id == me.id, EntryRow.number == number)
            row = s.execute(query.order_by(Comment.id.desc()).limit(1)).first()
            if row is None and number is not None:
                # Nobody has commented yet: the author may still start the thread on their share.
                share = s.scalar(select(Share).join(EntryRow, EntryRow.id == Share.entry_id)
                                 .where(Share.owner_id == me.id, EntryRow.number == number,
                                        Share.revoked_at.is_(None)).order_by(Share.id.desc()).limit(1))
                if share is None:
                    return None
                return Latest(share.id, number, name_of(s.get(User, share.viewer_id)), share.created_at)
            if row is None:
                return None
            comment, share, num, author = row
            return Latest(share.id, num, name_of(author), comment.created_at)

    def comments_for_owner(self, owner: str) -> list[tuple[int, str, str, datetime]]:
        """(entry number, who, text, when) on this person's shares, for their export."""
        with self.sessions() as s:
            own = self.person(s, owner)
            if own is None:
                return []
            out = []
            for share, number in s.execute(select(Share, EntryRow.number).join(EntryRow, EntryRow.id == Share.entry_id)
                                           .where(Share.owner_id == own.id)).all():
                out += [(number, "you" if said.mine else "supervisor", said.text, said.when)
                        for said in self._said(s, [share], own, own)]
            return out
