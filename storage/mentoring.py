"""Mentoring and schedules: pairings, each person's check-in times, and the delivery ledger.

No content lives here: a mentor's view of a mentee is counts and dates. The
ledger's uniqueness on (person, kind, slot) is what makes a check-in go out
exactly once, however many ticks run and however they overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.scheduler.slots import next_slot, parse_time

from .journal import SqlJournal
from .models import Delivery, Pairing, Schedule, User, utcnow
from .sharing import add_notification


@dataclass(frozen=True)
class Progress:
    handle: str
    name: str
    programme: str
    answered: int
    skipped: int
    last_checkin: datetime | None
    paused: bool


@dataclass(frozen=True)
class ScheduleView:
    kind: str
    days: tuple[int, ...]
    at: str
    timezone: str
    next_slot: datetime
    paused: bool
    paused_until: datetime | None


@dataclass(frozen=True)
class Due:
    schedule_id: int
    handle: str
    kind: str
    slot: datetime
    due_at: datetime


class MentoringStore:
    def __init__(self, journal: SqlJournal):
        self.journal = journal
        self._sessions = journal.sessions

    def _user(self, s, handle: str) -> User | None:
        return self.journal._user(s, handle)

    # ----- pairing ----------------------------------------------------------------------------

    def pair(self, mentor: str, mentee: str, programme: str, start: datetime) -> None:
        with self._sessions.begin() as s:
            m, e = self._user(s, mentor), self._user(s, mentee)
            if m is None or e is None:
                raise LookupError("no such user")
            if m.role not in ("mentor", "admin"):
                raise ValueError(f"{mentor} has the role {m.role!r}, not mentor")
            for old in s.scalars(select(Pairing).where(Pairing.mentee_id == e.id, Pairing.ended_at.is_(None))):
                old.ended_at = utcnow()
            s.add(Pairing(mentor_id=m.id, mentee_id=e.id, programme=programme, started_at=start))

    def unpair(self, mentor: str, mentee: str) -> bool:
        with self._sessions.begin() as s:
            m, e = self._user(s, mentor), self._user(s, mentee)
            if m is None or e is None:
                return False
            rows = s.scalars(select(Pairing).where(Pairing.mentor_id == m.id, Pairing.mentee_id == e.id,
                                                   Pairing.ended_at.is_(None))).all()
            for row in rows:
                row.ended_at = utcnow()
            return bool(rows)

    def pairing_of(self, mentee: str) -> tuple[str, str, datetime] | None:
        """(mentor handle, programme, started) for an active pairing."""
        with self._sessions() as s:
            e = self._user(s, mentee)
            if e is None:
                return None
            row = s.execute(select(Pairing, User).join(User, User.id == Pairing.mentor_id)
                            .where(Pairing.mentee_id == e.id, Pairing.ended_at.is_(None))).first()
            return (row[1].handle, row[0].programme, row[0].started_at) if row else None

    def mentees_of(self, mentor: str) -> list[Progress]:
        with self._sessions() as s:
            m = self._user(s, mentor)
            if m is None:
                return []
            out = []
            for pairing, mentee in s.execute(select(Pairing, User).join(User, User.id == Pairing.mentee_id)
                                             .where(Pairing.mentor_id == m.id, Pairing.ended_at.is_(None))):
                out.append(self._progress(s, mentee, pairing.programme))
            return out

    def _progress(self, s, mentee: User, programme: str) -> Progress:
        states = dict(s.execute(select(Delivery.state, func.count(func.distinct(Delivery.week)))
                                .where(Delivery.user_id == mentee.id, Delivery.kind == "checkin",
                                       Delivery.state.in_(("answered", "skipped"))).group_by(Delivery.state)).all())
        last = s.scalar(select(func.max(Delivery.delivered_at)).where(Delivery.user_id == mentee.id,
                                                                      Delivery.kind == "checkin"))
        sched = s.scalar(select(Schedule).where(Schedule.user_id == mentee.id, Schedule.kind == "checkin"))
        return Progress(mentee.handle, mentee.display_name or mentee.handle, programme, states.get("answered", 0),
                        states.get("skipped", 0), last, bool(sched and sched.paused))

    def answered_since(self, mentee: str, since: datetime) -> tuple[int, int]:
        """(weeks answered, weeks skipped) since a moment: what changed, for a mentor's digest."""
        with self._sessions() as s:
            e = self._user(s, mentee)
            if e is None:
                return 0, 0
            rows = dict(s.execute(select(Delivery.state, func.count()).where(
                Delivery.user_id == e.id, Delivery.kind == "checkin", Delivery.state.in_(("answered", "skipped")),
                Delivery.slot >= since).group_by(Delivery.state)).all())
            return rows.get("answered", 0), rows.get("skipped", 0)

    def current_week(self, mentee: str) -> int:
        """The first week not yet answered or skipped."""
        with self._sessions() as s:
            e = self._user(s, mentee)
            if e is None:
                return 1
            done = s.scalar(select(func.count(func.distinct(Delivery.week))).where(
                Delivery.user_id == e.id, Delivery.kind == "checkin", Delivery.state.in_(("answered", "skipped"))))
            return (done or 0) + 1

    # ----- schedules --------------------------------------------------------------------------

    def set_schedule(self, handle: str, kind: str, days: tuple[int, ...], at: str, zone: str,
                     now: datetime) -> ScheduleView:
        parse_time(at)
        with self._sessions.begin() as s:
            user = self._user(s, handle)
            row = s.scalar(select(Schedule).where(Schedule.user_id == user.id, Schedule.kind == kind))
            slot = next_slot(now, days, parse_time(at), ZoneInfo(zone))
            if row is None:
                row = Schedule(user_id=user.id, kind=kind, created_at=utcnow(), paused=False)
                s.add(row)
            row.days, row.at, row.timezone, row.next_slot = ",".join(map(str, days)), at, zone, slot
            return self._view(row)

    @staticmethod
    def _view(row: Schedule) -> ScheduleView:
        return ScheduleView(row.kind, tuple(int(d) for d in row.days.split(",") if d), row.at, row.timezone,
                            row.next_slot, row.paused, row.paused_until)

    def schedule(self, handle: str, kind: str) -> ScheduleView | None:
        with self._sessions() as s:
            user = self._user(s, handle)
            row = s.scalar(select(Schedule).where(Schedule.user_id == user.id, Schedule.kind == kind)) if user else None
            return self._view(row) if row else None

    def pause(self, handle: str, until: datetime | None) -> bool:
        with self._sessions.begin() as s:
            user = self._user(s, handle)
            rows = s.scalars(select(Schedule).where(Schedule.user_id == user.id)).all() if user else []
            for row in rows:
                row.paused, row.paused_until = True, until
            return bool(rows)

    def resume(self, handle: str, now: datetime) -> bool:
        with self._sessions.begin() as s:
            user = self._user(s, handle)
            rows = s.scalars(select(Schedule).where(Schedule.user_id == user.id, Schedule.paused.is_(True))).all() \
                if user else []
            for row in rows:
                row.paused, row.paused_until = False, None
                days = tuple(int(d) for d in row.days.split(","))
                row.next_slot = next_slot(now, days, parse_time(row.at), ZoneInfo(row.timezone))
            return bool(rows)

    # ----- the tick's side --------------------------------------------------------------------

    def due_schedules(self, now: datetime) -> list[tuple[int, str, str, datetime, str, str, str, bool,
                                                         datetime | None]]:
        """Schedules whose next slot has come (an index range scan: cheap with many schedules)."""
        with self._sessions() as s:
            rows = s.execute(select(Schedule, User.handle).join(User, User.id == Schedule.user_id)
                             .where(Schedule.next_slot <= now, User.revoked_at.is_(None))).all()
            return [(r.id, handle, r.kind, r.next_slot, r.days, r.at, r.timezone, r.paused, r.paused_until)
                    for r, handle in rows]

    def advance(self, schedule_id: int, after: datetime) -> None:
        with self._sessions.begin() as s:
            row = s.get(Schedule, schedule_id)
            if row is None or row.next_slot > after:
                return  # another tick moved it already
            days = tuple(int(d) for d in row.days.split(","))
            row.next_slot = next_slot(after, days, parse_time(row.at), ZoneInfo(row.timezone))
            if row.paused and row.paused_until is not None and row.paused_until <= after:
                row.paused, row.paused_until = False, None

    def claim(self, handle: str, kind: str, slot: datetime, state: str, week: int | None,
              due_at: datetime, message: dict | None = None) -> bool:
        """Write the ledger row for this slot, and its message, in one transaction.

        False if another tick already claimed the slot: the uniqueness of (person, kind, slot)
        is what makes a check-in go out exactly once. Ledger row and message commit together,
        so a crash can never leave a slot claimed but unsent.
        """
        try:
            with self._sessions.begin() as s:
                user = self._user(s, handle)
                s.add(Delivery(user_id=user.id, kind=kind, slot=slot, state=state, week=week, due_at=due_at,
                               delivered_at=utcnow() if state == "delivered" else None))
                s.flush()  # the uniqueness check happens here, before any message is written
                if message is not None:
                    add_notification(self.journal, s, user, message)
            return True
        except IntegrityError:
            return False

    def snoozed_due(self, now: datetime) -> list[tuple[int, str, str, int | None]]:
        with self._sessions() as s:
            return [(d.id, h, d.kind, d.week) for d, h in s.execute(
                select(Delivery, User.handle).join(User, User.id == Delivery.user_id)
                .where(Delivery.state.in_(("snoozed", "quiet")), Delivery.due_at <= now)).all()]

    def mark_delivered(self, delivery_id: int, message: dict,
                       expected: tuple[str, ...] = ("snoozed", "quiet")) -> bool:
        """A deferred (snoozed, quiet-hours) check-in goes out now, with its message, once."""
        with self._sessions.begin() as s:
            row = s.get(Delivery, delivery_id)
            if row is None or row.state not in expected:
                return False
            row.state, row.delivered_at = "delivered", utcnow()
            add_notification(self.journal, s, s.get(User, row.user_id), message)
            return True

    def _latest(self, s, user: User, kind: str = "checkin") -> Delivery | None:
        return s.scalar(select(Delivery).where(Delivery.user_id == user.id, Delivery.kind == kind,
                                               Delivery.state.in_(("delivered", "snoozed", "quiet")))
                        .order_by(Delivery.slot.desc()).limit(1))

    def snooze(self, handle: str, until: datetime) -> bool:
        with self._sessions.begin() as s:
            user = self._user(s, handle)
            row = self._latest(s, user) if user else None
            if row is None:
                return False
            row.state, row.due_at = "snoozed", until
            return True

    def finish_week(self, handle: str, week: int, state: str) -> None:
        """The person answered (or skipped) this week's check-in."""
        with self._sessions.begin() as s:
            finish_week(s, self._user(s, handle), week, state)

    # ----- the admin's view -------------------------------------------------------------------

    def succession(self, now: datetime, silent_weeks: int, capacity: int) -> dict:
        with self._sessions() as s:
            users = s.scalars(select(User).where(User.revoked_at.is_(None))).all()
            active = s.execute(select(Pairing).where(Pairing.ended_at.is_(None))).scalars().all()
            by_mentor: dict[int, list[Pairing]] = {}
            for p in active:
                by_mentor.setdefault(p.mentor_id, []).append(p)
            names = {u.id: u.display_name or u.handle for u in users}
            mentees = []
            silent = []
            for p in active:
                prog = self._progress(s, s.get(User, p.mentee_id), p.programme)
                mentees.append((names.get(p.mentee_id, "?"), names.get(p.mentor_id, "?"), prog))
                last_answer = s.scalar(select(func.max(Delivery.delivered_at)).where(
                    Delivery.user_id == p.mentee_id, Delivery.state == "answered"))
                reference = last_answer or p.started_at
                if now - reference > timedelta(weeks=silent_weeks):
                    silent.append(names.get(p.mentee_id, "?"))
            mentors = [u for u in users if u.role == "mentor"]
            return {
                "spanners": sum(1 for u in users if u.role == "spanner"),
                "mentors": len(mentors),
                "mentees": sum(1 for u in users if u.role == "mentee"),
                "per_mentor": {names[m.id]: len(by_mentor.get(m.id, [])) for m in mentors},
                "progress": mentees,
                "silent": silent,
                "over_capacity": [names[m] for m, ps in by_mentor.items() if len(ps) > capacity],
                "no_successor": [names[m.id] for m in mentors if not by_mentor.get(m.id)],
            }


def finish_week(s, user: User, week: int, state: str) -> None:
    """Mark a programme week answered or skipped, inside the caller's transaction."""
    row = s.scalar(select(Delivery).where(Delivery.user_id == user.id, Delivery.kind == "checkin",
                                          Delivery.state.in_(("delivered", "snoozed", "quiet")))
                   .order_by(Delivery.slot.desc()).limit(1))
    if row is not None and row.week == week:
        row.state = state
    else:  # answered from /checkins without a delivered slot: it still counts for the week
        s.add(Delivery(user_id=user.id, kind="checkin", slot=utcnow(), state=state, week=week,
                       due_at=utcnow(), delivered_at=utcnow()))
