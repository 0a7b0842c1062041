"""People and access: invitations, roles, listing and revoking users. Never journal content.

Invite codes are random, single-use and expiring; only their SHA-256 is
stored, so a copy of the database cannot be used to join.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from .journal import SqlJournal
from .models import Invite, User, utcnow

ROLES = ("spanner", "mentee", "mentor", "supervisor", "admin")


@dataclass(frozen=True)
class Person:
    handle: str
    display_name: str
    role: str
    joined: datetime
    revoked: bool


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


class People:
    def __init__(self, journal: SqlJournal):
        self.journal = journal
        self._sessions = journal.sessions

    def create_invite(self, role: str, hours: float = 72) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        code = secrets.token_urlsafe(18)
        with self._sessions.begin() as s:
            s.add(Invite(code_hash=_hash(code), role=role, created_at=utcnow(),
                         expires_at=utcnow() + timedelta(hours=hours)))
        return code

    def redeem(self, code: str, handle: str, display_name: str = "") -> str | None:
        """Use an invite for this person: their role, or None if the code is unknown, used or expired."""
        if not code or len(code) > 100:
            return None
        with self._sessions.begin() as s:
            invite = s.scalar(select(Invite).where(Invite.code_hash == _hash(code)))
            if invite is None or invite.used_at is not None or invite.expires_at <= utcnow():
                return None
            user = self.journal._user(s, handle, create=True, display_name=display_name)
            user.role = invite.role
            user.revoked_at = None
            invite.used_at, invite.used_by = utcnow(), user.id
            return invite.role

    def is_member(self, handle: str) -> bool:
        with self._sessions() as s:
            user = s.scalar(select(User).where(User.handle == handle))
            return user is not None and user.revoked_at is None

    def list(self) -> list[Person]:
        with self._sessions() as s:
            return [Person(u.handle, u.display_name, u.role, u.created_at, u.revoked_at is not None)
                    for u in s.scalars(select(User).order_by(User.created_at))]

    def revoke(self, who: str) -> bool:
        """Remove someone's access (their journal stays theirs until they or an admin erase it)."""
        with self._sessions.begin() as s:
            user = s.scalar(select(User).where(User.handle == who)) or \
                s.scalar(select(User).where(User.handle == f"telegram:{who}"))
            if user is None:
                return False
            user.revoked_at = utcnow()
            return True
