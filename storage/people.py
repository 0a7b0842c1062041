"""People and access: invitations, roles, finding a person by name, revoking. Never journal content.

A person may hold several roles (a spanner who also mentors). Invite codes are
random, single-use and expiring; only their SHA-256 is stored, so a copy of the
database cannot be used to join. Admin commands name people as `spanner admin
users` shows them; `resolve` accepts a handle with or without its
`console:`/`telegram:` prefix, or a display name, as long as only one person fits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .base import Store
from .db import insert_new
from .models import Invite, User, UserRole, utcnow

ROLES = ("spanner", "mentee", "mentor", "supervisor", "admin")
TRANSPORTS = ("console", "telegram")


class PersonNotFound(LookupError):
    """No person fits the name given; the message names it."""

    def __init__(self, name: str):
        super().__init__(f"no person {name!r}")
        self.name = name


class AmbiguousPerson(LookupError):
    """More than one person fits the name given; the message lists them."""

    def __init__(self, name: str, handles: list[str]):
        super().__init__(f"{name!r} could be {' or '.join(handles)}; use the full handle")
        self.name = name
        self.handles = handles


@dataclass(frozen=True)
class Person:
    handle: str
    display_name: str
    roles: tuple[str, ...]
    joined: datetime
    revoked: bool


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def _ordered(roles) -> tuple[str, ...]:
    return tuple(sorted(set(roles), key=lambda r: ROLES.index(r) if r in ROLES else len(ROLES)))


def roles_of(s: Session, person: User) -> tuple[str, ...]:
    """The roles this person holds, in the order of ROLES."""
    return _ordered(s.scalars(select(UserRole.role).where(UserRole.user_id == person.id)))


def has_role(s: Session, person: User, *roles: str) -> bool:
    return s.scalar(select(func.count()).select_from(UserRole).where(
        UserRole.user_id == person.id, UserRole.role.in_(roles))) > 0


def grant(s: Session, person: User, role: str) -> bool:
    """Give a role inside the caller's transaction; False if they held it already."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    # ON CONFLICT DO NOTHING: on PostgreSQL two processes may give the same role at once.
    return s.scalar(insert_new(s, UserRole.__table__).values(user_id=person.id, role=role)
                    .returning(UserRole.user_id)) is not None


class People(Store):
    """Who is here and what they may do: the People port, and the admin's side."""

    # ----- invitations ------------------------------------------------------------------------

    def create_invite(self, role: str, hours: float = 72) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        code = secrets.token_urlsafe(18)
        with self.sessions.begin() as s:
            s.add(Invite(code_hash=_hash(code), role=role, created_at=utcnow(),
                         expires_at=utcnow() + timedelta(hours=hours)))
        return code

    def redeem(self, code: str, handle: str, display_name: str = "") -> str | None:
        """Use an invite for this person: the role it gives, or None if the code is unknown, used or expired.

        Redeeming a code this same person already used gives its role again (a message
        handled twice after a restart must not turn into a refusal).
        """
        if not code or len(code) > 100:
            return None
        with self.sessions.begin() as s:
            invite = s.scalar(select(Invite).where(Invite.code_hash == _hash(code)))
            if invite is None:
                return None
            person = self.person(s, handle)
            if invite.used_at is not None:
                return invite.role if person is not None and invite.used_by == person.id else None
            if invite.expires_at <= utcnow():
                return None
            if person is None:
                person = self.person(s, handle, create=True, display_name=display_name, role=invite.role)
            grant(s, person, invite.role)
            person.revoked_at = None
            invite.used_at, invite.used_by = utcnow(), person.id
            return invite.role

    # ----- roles ------------------------------------------------------------------------------

    def roles(self, handle: str) -> tuple[str, ...]:
        with self.sessions() as s:
            person = self.person(s, handle)
            return roles_of(s, person) if person is not None else ("spanner",)

    def set_role(self, handle: str, role: str, remove: bool = False) -> tuple[str, ...]:
        """Give (or take away) a role; a console person named in full is created if new. Returns their roles."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        with self.sessions.begin() as s:
            person = self.person(s, handle)
            if person is None and handle.startswith("console:") and not remove:
                person = self.person(s, handle, create=True, display_name=handle.split(":", 1)[1], role=role)
            if person is None:
                raise PersonNotFound(handle)
            if remove:
                s.execute(delete(UserRole).where(UserRole.user_id == person.id, UserRole.role == role))
            else:
                grant(s, person, role)
            return roles_of(s, person)

    # ----- finding people ---------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """The handle of the one person `name` means: a handle, with or without its prefix, or a display name."""
        name = name.strip()
        with self.sessions() as s:
            people = s.scalars(select(User)).all()
        exact = [p.handle for p in people if p.handle == name]
        if exact:
            return exact[0]
        bare = name.split(":", 1)[1] if name.split(":", 1)[0] in TRANSPORTS else name
        for candidates in ([p.handle for p in people if p.handle.split(":", 1)[-1] == bare],
                           [p.handle for p in people if p.display_name.lower() == bare.lower()]):
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise AmbiguousPerson(name, sorted(candidates))
        raise PersonNotFound(name)

    def is_member(self, handle: str) -> bool:
        with self.sessions() as s:
            user = self.person(s, handle)
            return user is not None and user.revoked_at is None

    def list(self) -> list[Person]:
        with self.sessions() as s:
            return [Person(u.handle, u.display_name, roles_of(s, u), u.created_at, u.revoked_at is not None)
                    for u in s.scalars(select(User).order_by(User.created_at))]

    def revoke(self, handle: str) -> bool:
        """Remove someone's access (their journal stays theirs until they or an admin erase it)."""
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            if user is None:
                return False
            user.revoked_at = utcnow()
            return True
