"""Succession mentoring in the chat: check-ins on the mentee's own schedule, snooze, skip, pause, mentors' views.

A check-in is answered like a reflection (its week's questions, with the same
critical-friend follow-ups and literature ideas) and saved as a journal entry
linked to the programme week. A mentor sees progress (counts and dates) and
never content, unless the mentee shares an entry.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from .context import Context
from .records import Choice, Reply

DURATION_RE = re.compile(r"^(\d{1,3})\s*(m|min|mins|minutes|h|hr|hrs|hours|d|days?)$", re.I)
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_until(text: str, now: datetime, tz) -> datetime | None:
    """'2h', '30m', '3d', '17:30' (today or tomorrow) or '2026-12-01' -> an instant; None if not understood."""
    text = text.strip().lower()
    match = DURATION_RE.match(text)
    if match:
        n, unit = int(match.group(1)), match.group(2)[0]
        return now + {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", text):
            hours, minutes = map(int, text.split(":"))
            local = now.astimezone(tz).replace(hour=hours, minute=minutes, second=0, microsecond=0)
            if local <= now.astimezone(tz):
                local += timedelta(days=1)
            return local
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.fromisoformat(text).replace(tzinfo=tz)
    except ValueError:
        return None
    return None


class MentoringCommands:
    def __init__(self, ctx: Context, reflection):
        self.ctx = ctx
        self.reflection = reflection

    @property
    def port(self):
        return self.ctx.mentoring

    def _programme(self, user: str):
        pairing = self.port.pairing_of(user) if self.port else None
        if pairing is None:
            return None, None
        return pairing, self.ctx.prompts.programmes.get(pairing[1])

    def _describe(self, view) -> str:
        days = ", ".join(DAY_NAMES[d] for d in view.days)
        state = " (paused)" if view.paused else ""
        return f"{days} at {view.at} ({view.timezone}){state}; next: {self.ctx.local(view.next_slot)}"

    # ----- /checkins ------------------------------------------------------------------------------

    def checkins(self, user: str, args: str) -> list[Reply]:
        if self.port is None:
            return [Reply(self.ctx.say("checkins_unavailable"))]
        if self.ctx.tick is not None:
            self.ctx.tick()  # anything due now arrives with this answer (the console has no push)
        if args.strip():
            return self._set_schedule(user, "checkin", args)
        pairing, programme = self._programme(user)
        view = self.port.schedule(user, "checkin")
        lines = []
        if programme is not None:
            week = self.port.current_week(user)
            lines.append(self.ctx.say("checkins_programme", title=programme.title,
                                      week=min(week, len(programme.weeks)), weeks=len(programme.weeks)))
        lines.append(self.ctx.say("checkins_schedule", schedule=self._describe(view)) if view
                     else self.ctx.say("checkins_none"))
        lines.append(self.ctx.say("checkins_help"))
        choices = ()
        if programme is not None and self.port.current_week(user) <= len(programme.weeks):
            choices = (Choice("Start this week's check-in", "ci:start"),)
        return [Reply("\n".join(lines), choices)]

    def _set_schedule(self, user: str, kind: str, args: str) -> list[Reply]:
        from bot.scheduler.slots import parse_days, parse_time  # pure time arithmetic
        parts = args.split()
        if len(parts) < 2:
            return [Reply(self.ctx.say("checkins_usage"))]
        try:
            days = parse_days(parts[0])
            parse_time(parts[1])
        except ValueError as exc:
            return [Reply(self.ctx.say("checkins_bad", problem=str(exc)))]
        zone = parts[2] if len(parts) > 2 else (self.ctx.journal.get_timezone(user) or self.ctx.settings.timezone)
        try:
            from zoneinfo import ZoneInfo
            ZoneInfo(zone)
        except Exception:
            return [Reply(self.ctx.say("timezone_unknown", zone=zone[:60]))]
        view = self.port.set_schedule(user, kind, days, parts[1], zone, self.ctx.now())
        key = "checkins_set" if kind == "checkin" else "reminder_set"
        return [Reply(self.ctx.say(key, schedule=self._describe(view)))]

    def remind(self, user: str, args: str) -> list[Reply]:
        if self.port is None:
            return [Reply(self.ctx.say("checkins_unavailable"))]
        if args.strip().lower() == "off":
            self.port.pause(user, None)
            return [Reply(self.ctx.say("reminder_off"))]
        if not args.strip():
            view = self.port.schedule(user, "reminder")
            return [Reply(self.ctx.say("reminder_current", schedule=self._describe(view)) if view
                          else self.ctx.say("reminder_usage"))]
        return self._set_schedule(user, "reminder", args)

    # ----- answering, snoozing, skipping, pausing ----------------------------------------------

    def start(self, user: str, state: dict) -> list[Reply]:
        pairing, programme = self._programme(user)
        if programme is None:
            return [Reply(self.ctx.say("no_programme"))]
        week = self.port.current_week(user)
        if week > len(programme.weeks):
            return [Reply(self.ctx.say("programme_done"))]
        state.pop("pending", None)
        return self.reflection.restart(user, state, f"checkin:{programme.name}:{week}")

    def answered(self, user: str, week: int | None) -> None:
        if week is not None:
            self.ctx.journal.finish_week(user, week, "answered")

    def snooze(self, user: str, args: str) -> list[Reply]:
        until = parse_until(args or "2h", self.ctx.now(), self.ctx.tz)
        if until is None:
            return [Reply(self.ctx.say("snooze_usage"))]
        if self.port is None or not self.port.snooze(user, until):
            return [Reply(self.ctx.say("nothing_to_snooze"))]
        return [Reply(self.ctx.say("snoozed", until=self.ctx.local(until)))]

    def skip(self, user: str) -> list[Reply]:
        pairing, programme = self._programme(user)
        if programme is None:
            return [Reply(self.ctx.say("not_in_reflection", command="/skip"))]
        week = self.port.current_week(user)
        if week > len(programme.weeks):
            return [Reply(self.ctx.say("programme_done"))]
        self.ctx.journal.finish_week(user, week, "skipped")
        return [Reply(self.ctx.say("week_skipped", week=week))]

    def pause(self, user: str, args: str) -> list[Reply]:
        until = None
        if args.strip():
            until = parse_until(args, self.ctx.now(), self.ctx.tz)
            if until is None:
                return [Reply(self.ctx.say("pause_usage"))]
        if self.port is None or not self.port.pause(user, until):
            return [Reply(self.ctx.say("checkins_none"))]
        key = "paused_until" if until else "paused"
        return [Reply(self.ctx.say(key, until=self.ctx.local(until) if until else ""))]

    def resume_schedule(self, user: str) -> list[Reply] | None:
        """/resume with no reflection in progress: resume paused check-ins, if any."""
        if self.port is not None and self.port.resume(user, self.ctx.now()):
            return [Reply(self.ctx.say("checkins_resumed"))]
        return None

    # ----- mentors ------------------------------------------------------------------------------

    def mentees(self, user: str) -> list[Reply]:
        rows = self.port.mentees_of(user) if self.port else []
        if not rows:
            return [Reply(self.ctx.say("no_mentees"))]
        lines = [self.ctx.say("mentees_header")]
        for p in rows:
            last = self.ctx.local(p.last_checkin) if p.last_checkin else "none yet"
            paused = ", paused" if p.paused else ""
            lines.append(f"{p.name}: {p.answered} weeks answered, {p.skipped} skipped, "
                         f"last check-in {last}{paused}")
        return [Reply("\n".join(lines))]

    def mentee_named(self, mentor: str, name: str):
        for p in self.port.mentees_of(mentor) if self.port else []:
            if name.lower() in (p.name.lower(), p.handle.lower(), p.handle.split(":", 1)[-1].lower()):
                return p
        return None

    def note_to_mentee(self, mentor: str, mentee, text: str) -> list[Reply]:
        self.ctx.sharing.notify(mentee.handle, {"text": self.ctx.say("note_from_mentor", text=text),
                                                "choices": [["Reply", "mn:reply"]]})
        return [Reply(self.ctx.say("note_sent", name=mentee.name))]

    def start_reply(self, user: str, state: dict) -> list[Reply]:
        pairing = self.port.pairing_of(user) if self.port else None
        if pairing is None:
            return [Reply(self.ctx.say("no_programme"))]
        state["pending"] = {"action": "mentor_reply"}
        return [Reply(self.ctx.say("reply_prompt"))]

    def finish_reply(self, user: str, text: str, state: dict) -> list[Reply]:
        state.pop("pending", None)
        pairing = self.port.pairing_of(user) if self.port else None
        if pairing is None:
            return [Reply(self.ctx.say("no_programme"))]
        name = self.ctx.journal.display_name(user)
        self.ctx.sharing.notify(pairing[0], {"text": self.ctx.say("reply_from_mentee", name=name, text=text)})
        return [Reply(self.ctx.say("comment_sent"))]
