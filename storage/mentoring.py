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

from .base import Store, name_of
from .db import claim, insert_new
from .models import Delivery, EntryRow, MentoringMessage, Pairing, Schedule, User, utcnow
from .notices import add_notice
from .people import grant, has_role, roles_of
from .slots import clock_time, next_slot


@dataclass(frozen=True)
class Progress:
    handle: str
    name: str
    programme: str
    answered: int
    skipped: int
    last_checkin: datetime | None
    paused: bool
    week: int = 1  # the week they are on: the first not yet answered or skipped
    last_answer: datetime | None = None  # when they last saved a check-in entry
    paused_until: datetime | None = None
    pairing_id: int = 0


@dataclass(frozen=True)
class PairingView:
    """An active pairing as either side sees it."""

    id: int
    mentor: str
    mentor_name: str
    mentee: str
    mentee_name: str
    programme: str
    started: datetime


@dataclass(frozen=True)
class Posted:
    """A mentoring note just written: who should hear of it, in which pairing."""

    recipient: str
    pairing_id: int
    to_mentee: bool


@dataclass(frozen=True)
class LatestNote:
    pairing_id: int
    name: str
    when: datetime


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


class MentoringStore(Store):
    # ----- pairing ----------------------------------------------------------------------------

    def pair(self, mentor: str, mentee: str, programme: str, start: datetime) -> bool:
        """Pair them; the mentee holds the role mentee from now on. True if that role is new to them."""
        with self.sessions.begin() as s:
            m, e = self.person(s, mentor), self.person(s, mentee)
            if m is None or e is None:
                raise LookupError(f"no person {mentor if m is None else mentee!r}")
            if not has_role(s, m, "mentor", "admin"):
                raise ValueError(f"{mentor} holds {', '.join(roles_of(s, m))}, not mentor")
            for old in s.scalars(select(Pairing).where(Pairing.mentee_id == e.id, Pairing.ended_at.is_(None))):
                old.ended_at = utcnow()
            s.add(Pairing(mentor_id=m.id, mentee_id=e.id, programme=programme, started_at=start))
            return grant(s, e, "mentee")

    def unpair(self, mentor: str, mentee: str) -> bool:
        with self.sessions.begin() as s:
            m, e = self.person(s, mentor), self.person(s, mentee)
            if m is None or e is None:
                return False
            rows = s.scalars(select(Pairing).where(Pairing.mentor_id == m.id, Pairing.mentee_id == e.id,
                                                   Pairing.ended_at.is_(None))).all()
            for row in rows:
                row.ended_at = utcnow()
            return bool(rows)

    def pairing_of(self, mentee: str) -> tuple[str, str, datetime] | None:
        """(mentor handle, programme, started) for an active pairing."""
        found = self.pairing(mentee)
        return (found.mentor, found.programme, found.started) if found else None

    def pairing(self, mentee: str) -> PairingView | None:
        """This person's active pairing as a mentee, if any."""
        with self.sessions() as s:
            e = self.person(s, mentee)
            if e is None:
                return None
            row = s.scalar(select(Pairing).where(Pairing.mentee_id == e.id, Pairing.ended_at.is_(None))
                           .order_by(Pairing.id.desc()).limit(1))
            return self._pairing_view(s, row) if row else None

    def pairing_by_id(self, pairing_id: int, member: str) -> PairingView | None:
        """An active pairing, only if this person is its mentor or its mentee."""
        with self.sessions() as s:
            me, row = self.person(s, member), s.get(Pairing, pairing_id)
            if me is None or row is None or row.ended_at is not None or me.id not in (row.mentor_id, row.mentee_id):
                return None
            return self._pairing_view(s, row)

    @staticmethod
    def _pairing_view(s, row: Pairing) -> PairingView:
        m, e = s.get(User, row.mentor_id), s.get(User, row.mentee_id)
        return PairingView(row.id, m.handle, name_of(m), e.handle, name_of(e), row.programme, row.started_at)

    def mentees_of(self, mentor: str) -> list[Progress]:
        with self.sessions() as s:
            m = self.person(s, mentor)
            if m is None:
                return []
            out = []
            for pairing, mentee in s.execute(select(Pairing, User).join(User, User.id == Pairing.mentee_id)
                                             .where(Pairing.mentor_id == m.id, Pairing.ended_at.is_(None))
                                             .order_by(Pairing.id)):
                out.append(self._progress(s, mentee, pairing.programme, pairing.id))
            return out

    def _progress(self, s, mentee: User, programme: str, pairing_id: int = 0) -> Progress:
        states = dict(s.execute(select(Delivery.state, func.count(func.distinct(Delivery.week)))
                                .where(Delivery.user_id == mentee.id, Delivery.kind == "checkin",
                                       Delivery.state.in_(("answered", "skipped"))).group_by(Delivery.state)).all())
        last = s.scalar(select(func.max(Delivery.delivered_at)).where(Delivery.user_id == mentee.id,
                                                                      Delivery.kind == "checkin"))
        last_answer = s.scalar(select(func.max(EntryRow.created_at)).where(EntryRow.user_id == mentee.id,
                                                                           EntryRow.programme_week.is_not(None)))
        sched = s.scalar(select(Schedule).where(Schedule.user_id == mentee.id, Schedule.kind == "checkin"))
        return Progress(mentee.handle, name_of(mentee), programme, states.get("answered", 0),
                        states.get("skipped", 0), last, bool(sched and sched.paused), self._week(s, mentee),
                        last_answer, sched.paused_until if sched and sched.paused else None, pairing_id)

    def answered_since(self, mentee: str, since: datetime) -> tuple[int, int]:
        """(weeks answered, weeks skipped) since a moment: what changed, for a mentor's digest."""
        with self.sessions() as s:
            e = self.person(s, mentee)
            if e is None:
                return 0, 0
            rows = dict(s.execute(select(Delivery.state, func.count()).where(
                Delivery.user_id == e.id, Delivery.kind == "checkin", Delivery.state.in_(("answered", "skipped")),
                Delivery.slot >= since).group_by(Delivery.state)).all())
            return rows.get("answered", 0), rows.get("skipped", 0)

    @staticmethod
    def _week(s, mentee: User) -> int:
        done = s.scalar(select(func.count(func.distinct(Delivery.week))).where(
            Delivery.user_id == mentee.id, Delivery.kind == "checkin", Delivery.state.in_(("answered", "skipped"))))
        return (done or 0) + 1

    def current_week(self, mentee: str) -> int:
        """The first week not yet answered or skipped."""
        with self.sessions() as s:
            e = self.person(s, mentee)
            return self._week(s, e) if e is not None else 1

    def due_week(self, mentee: str, now: datetime) -> int | None:
        """The week whose check-in has come and is still open (not answered, skipped or snoozed), if any."""
        with self.sessions() as s:
            e = self.person(s, mentee)
            if e is None:
                return None
            latest = s.scalar(select(Delivery).where(Delivery.user_id == e.id, Delivery.kind == "checkin")
                              .order_by(Delivery.slot.desc()).limit(1))
            if latest is None or latest.state not in ("delivered", "missed") or latest.due_at > now:
                return None
            week = self._week(s, e)
            return week if latest.week == week else None

    # ----- notes between mentor and mentee ------------------------------------------------------

    def post(self, author: str, pairing_id: int, text: str) -> Posted | None:
        """A note from one side of an active pairing to the other, kept under the mentee's key."""
        with self.sessions.begin() as s:
            me, row = self.person(s, author), s.get(Pairing, pairing_id)
            if me is None or row is None or row.ended_at is not None or me.id not in (row.mentor_id, row.mentee_id):
                return None
            mentee = s.get(User, row.mentee_id)
            msg = MentoringMessage(pairing_id=row.id, author_id=me.id, body_ct=b"", created_at=utcnow())
            s.add(msg)
            s.flush()
            msg.body_ct = self.cipher(s, mentee).seal("mentoring_messages", msg.id, "body", text)
            to_mentee = me.id == row.mentor_id
            other = mentee if to_mentee else s.get(User, row.mentor_id)
            return Posted(other.handle, row.id, to_mentee)

    def latest_note_to(self, handle: str) -> LatestNote | None:
        """The newest note the other side of one of this person's active pairings wrote to them."""
        with self.sessions() as s:
            me = self.person(s, handle)
            if me is None:
                return None
            row = s.execute(select(MentoringMessage, User).join(Pairing, Pairing.id == MentoringMessage.pairing_id)
                            .join(User, User.id == MentoringMessage.author_id)
                            .where(Pairing.ended_at.is_(None), MentoringMessage.author_id != me.id,
                                   (Pairing.mentor_id == me.id) | (Pairing.mentee_id == me.id))
                            .order_by(MentoringMessage.id.desc()).limit(1)).first()
            return LatestNote(row[0].pairing_id, name_of(row[1]), row[0].created_at) if row else None

    def notes_of(self, mentee: str) -> list[tuple[str, bool, str, datetime]]:
        """(author name, written by this mentee, text, when) for every note in their pairings, for their export."""
        with self.sessions() as s:
            e = self.person(s, mentee)
            if e is None:
                return []
            cipher = self.cipher(s, e)
            rows = s.execute(select(MentoringMessage, User).join(Pairing, Pairing.id == MentoringMessage.pairing_id)
                             .join(User, User.id == MentoringMessage.author_id)
                             .where(Pairing.mentee_id == e.id).order_by(MentoringMessage.id)).all()
            return [(name_of(u), u.id == e.id, cipher.open("mentoring_messages", m.id, "body", m.body_ct),
                     m.created_at) for m, u in rows]

    # ----- schedules --------------------------------------------------------------------------

    def set_schedule(self, handle: str, kind: str, days: tuple[int, ...], at: str, zone: str,
                     now: datetime) -> ScheduleView:
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            row = s.scalar(select(Schedule).where(Schedule.user_id == user.id, Schedule.kind == kind))
            slot = next_slot(now, days, clock_time(at), ZoneInfo(zone))
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
        with self.sessions() as s:
            user = self.person(s, handle)
            row = s.scalar(select(Schedule).where(Schedule.user_id == user.id, Schedule.kind == kind)) if user else None
            return self._view(row) if row else None

    def stop(self, handle: str, kind: str) -> bool:
        """Remove a schedule (reminders turned off)."""
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            row = s.scalar(select(Schedule).where(Schedule.user_id == user.id, Schedule.kind == kind)) if user else None
            if row is not None:
                s.delete(row)
            return row is not None

    def pause(self, handle: str, until: datetime | None, kinds: tuple[str, ...] = ("checkin",)) -> bool:
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            rows = s.scalars(select(Schedule).where(Schedule.user_id == user.id, Schedule.kind.in_(kinds))).all() \
                if user else []
            for row in rows:
                row.paused, row.paused_until = True, until
            return bool(rows)

    def resume(self, handle: str, now: datetime, kinds: tuple[str, ...] = ("checkin",)) -> bool:
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            rows = s.scalars(select(Schedule).where(Schedule.user_id == user.id, Schedule.paused.is_(True),
                                                    Schedule.kind.in_(kinds))).all() if user else []
            for row in rows:
                row.paused, row.paused_until = False, None
                days = tuple(int(d) for d in row.days.split(","))
                row.next_slot = next_slot(now, days, clock_time(row.at), ZoneInfo(row.timezone))
            return bool(rows)

    # ----- the tick's side --------------------------------------------------------------------

    def due_schedules(self, now: datetime) -> list[tuple[int, str, str, datetime, str, str, str, bool,
                                                         datetime | None]]:
        """Schedules whose next slot has come (an index range scan: cheap with many schedules)."""
        with self.sessions() as s:
            rows = s.execute(select(Schedule, User.handle).join(User, User.id == Schedule.user_id)
                             .where(Schedule.next_slot <= now, User.revoked_at.is_(None))).all()
            return [(r.id, handle, r.kind, r.next_slot, r.days, r.at, r.timezone, r.paused, r.paused_until)
                    for r, handle in rows]

    def advance(self, schedule_id: int, after: datetime) -> None:
        with self.sessions.begin() as s:
            row = s.scalar(claim(select(Schedule).where(Schedule.id == schedule_id)))
            if row is None or row.next_slot > after:
                return  # another tick moved it already (or is moving it)
            days = tuple(int(d) for d in row.days.split(","))
            row.next_slot = next_slot(after, days, clock_time(row.at), ZoneInfo(row.timezone))
            if row.paused and row.paused_until is not None and row.paused_until <= after:
                row.paused, row.paused_until = False, None

    def claim(self, handle: str, kind: str, slot: datetime, state: str, week: int | None,
              due_at: datetime, message: dict | None = None) -> bool:
        """Write the ledger row for this slot, and its message, in one transaction.

        False if another tick already claimed the slot: the uniqueness of (person, kind, slot)
        is what makes a check-in go out exactly once. Ledger row and message commit together,
        so a crash can never leave a slot claimed but unsent.
        """
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            # ON CONFLICT DO NOTHING RETURNING: the uniqueness check, before any message is written. On
            # PostgreSQL a second tick's insert waits for the first to commit, then inserts nothing.
            won = s.scalar(insert_new(s, Delivery.__table__).returning(Delivery.id).values(
                user_id=user.id, kind=kind, slot=slot, state=state, week=week, due_at=due_at,
                delivered_at=utcnow() if state == "delivered" else None))
            if won is None:
                return False
            if message is not None:
                add_notice(self, s, user, message, kind)
        return True

    def snoozed_due(self, now: datetime) -> list[tuple[int, str, str, int | None]]:
        with self.sessions() as s:
            return [(d.id, h, d.kind, d.week) for d, h in s.execute(
                select(Delivery, User.handle).join(User, User.id == Delivery.user_id)
                .where(Delivery.state.in_(("snoozed", "quiet")), Delivery.due_at <= now)).all()]

    def mark_delivered(self, delivery_id: int, message: dict,
                       expected: tuple[str, ...] = ("snoozed", "quiet")) -> bool:
        """A deferred (snoozed, quiet-hours) check-in goes out now, with its message, once."""
        with self.sessions.begin() as s:
            row = s.scalar(claim(select(Delivery).where(Delivery.id == delivery_id)))
            if row is None or row.state not in expected:  # gone, taken by another tick, or already out
                return False
            row.state, row.delivered_at = "delivered", utcnow()
            add_notice(self, s, s.get(User, row.user_id), message, row.kind)
            return True

    @staticmethod
    def _latest(s, user: User, kind: str = "checkin") -> Delivery | None:
        return s.scalar(select(Delivery).where(Delivery.user_id == user.id, Delivery.kind == kind,
                                               Delivery.state.in_(("delivered", "missed", "snoozed", "quiet")))
                        .order_by(Delivery.slot.desc()).limit(1))

    def snooze(self, handle: str, until: datetime) -> bool:
        with self.sessions.begin() as s:
            user = self.person(s, handle)
            row = self._latest(s, user) if user else None
            if row is None or (row.week is not None and row.week != self._week(s, user)):
                return False
            row.state, row.due_at = "snoozed", until
            return True

    def finish_week(self, handle: str, week: int, state: str) -> None:
        """The person answered (or skipped) this week's check-in."""
        with self.sessions.begin() as s:
            finish_week(s, self.person(s, handle), week, state)

    # ----- the admin's view -------------------------------------------------------------------

    def succession(self, now: datetime, silent_weeks: int, capacity: int, weeks_of) -> dict:
        """Who mentors whom and how far along, who has gone silent, and whether anyone is nearly ready.

        `weeks_of(programme)` gives a programme's length. A mentee has reached the final third
        when the week they are on is past two thirds of it (week 9 of 12).
        """
        with self.sessions() as s:
            users = s.scalars(select(User).where(User.revoked_at.is_(None))).all()
            roles = {u.id: roles_of(s, u) for u in users}
            active = s.execute(select(Pairing).where(Pairing.ended_at.is_(None))).scalars().all()
            by_mentor: dict[int, list[Pairing]] = {}
            for p in active:
                by_mentor.setdefault(p.mentor_id, []).append(p)
            names = {u.id: name_of(u) for u in users}
            mentees, silent, ready = [], [], set()
            for p in active:
                prog = self._progress(s, s.get(User, p.mentee_id), p.programme)
                mentees.append((names.get(p.mentee_id, "?"), names.get(p.mentor_id, "?"), prog))
                if prog.week > (2 * weeks_of(p.programme)) // 3:
                    ready.add(p.mentor_id)
                last_answer = s.scalar(select(func.max(Delivery.delivered_at)).where(
                    Delivery.user_id == p.mentee_id, Delivery.state == "answered"))
                reference = last_answer or p.started_at
                if now - reference > timedelta(weeks=silent_weeks):
                    silent.append(names.get(p.mentee_id, "?"))
            mentors = [u for u in users if "mentor" in roles[u.id]]
            return {
                "spanners": sum(1 for u in users if "spanner" in roles[u.id]),
                "mentors": len(mentors),
                "mentees": sum(1 for u in users if "mentee" in roles[u.id]),
                "per_mentor": {names[m.id]: len(by_mentor.get(m.id, [])) for m in mentors},
                "progress": mentees,
                "silent": silent,
                "over_capacity": [names[m] for m, ps in by_mentor.items() if len(ps) > capacity],
                # The succession question: mentoring someone, but nobody near the end of the programme yet.
                "none_near_ready": [names[m] for m in by_mentor if m not in ready and m in names],
                "idle_mentors": [names[m.id] for m in mentors if not by_mentor.get(m.id)],
            }


def finish_week(s, user: User, week: int, state: str) -> None:
    """Mark a programme week answered or skipped, inside the caller's transaction."""
    row = s.scalar(select(Delivery).where(Delivery.user_id == user.id, Delivery.kind == "checkin",
                                          Delivery.state.in_(("delivered", "missed", "snoozed", "quiet")))
                   .order_by(Delivery.slot.desc()).limit(1))
    if row is not None and row.week == week:
        row.state = state
    else:  # answered from /checkins without a delivered slot: it still counts for the week
        s.add(Delivery(user_id=user.id, kind="checkin", slot=utcnow(), state=state, week=week,
                       due_at=utcnow(), delivered_at=utcnow()))
