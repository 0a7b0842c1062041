"""Succession mentoring in the chat: check-ins on the mentee's own schedule, snooze, skip, pause, mentors' views.

A check-in is answered like a reflection (its week's questions, with the same
critical-friend follow-ups and literature ideas) and saved as a journal entry
linked to the programme week. A mentor sees progress (the week a mentee is on,
counts and dates) and never content, unless the mentee shares an entry. Notes
between mentor and mentee are threads (reply_commands). What the scheduler
sends (a check-in, a reminder, a mentor's digest) is written here too, from
prompts/messages.toml.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .context import Context
from .inputs import InputError, is_blank, parse_days, parse_time
from .records import Choice, Reply
from .reflection import REFLECT
from .registry import JOURNALING, Button, Call, Registry

DURATION_RE = re.compile(r"^(\d{1,3})\s*(m|min|mins|minutes|h|hr|hrs|hours|d|days?)$", re.I)
#: A delivered check-in's buttons: start it, snooze it two hours, skip the week.
CHECKIN = Button("ci", r"(start|snooze|skip)")


def parse_until(text: str, now: datetime, tz) -> datetime | None:
    """'2h', '30m', '3d', '17:30' (today or tomorrow), '2026-12-01' or 'until 2026-12-01' -> an instant."""
    text = text.strip().lower().removeprefix("until").strip()
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


def _same_person(word: str, name: str, handle: str) -> bool:
    """Whether the first word of "/note WORD TEXT" names this person (first name, name or handle)."""
    word = word.lower()
    return word in (name.lower(), name.split()[0].lower() if name.split() else "", handle.lower(),
                    handle.split(":", 1)[-1].lower())


class MentoringCommands:
    def __init__(self, ctx: Context, reflection, journal, replies):
        self.ctx = ctx
        self.reflection = reflection
        self.journal = journal
        self.replies = replies

    def register(self, r: Registry) -> None:
        r.command("checkins", lambda call: self.checkins(call.user, call.args), ("mentee",))
        r.command("snooze", lambda call: self.snooze(call.user, call.args), ("mentee",))
        r.command("pause", lambda call: self.pause(call.user, call.args), ("mentee",))
        r.command("remind", lambda call: self.remind(call.user, call.args), JOURNALING)
        r.command("mentees", lambda call: self.mentees(call.user), ("mentor",))
        r.button(CHECKIN, self.on_button)

    @property
    def port(self):
        return self.ctx.mentoring

    def _programme(self, user: str):
        pairing = self.port.pairing_of(user) if self.port else None
        if pairing is None:
            return None, None
        return pairing, self.ctx.prompts.programmes.get(pairing[1])

    def _describe(self, view) -> str:
        say = self.ctx.say
        days = ", ".join(say("day_names").split(",")[d].strip() for d in view.days)
        if view.paused:
            state = say("schedule_paused_until", until=self.ctx.local_day(view.paused_until)) if view.paused_until \
                else say("schedule_paused")
        else:
            state = say("schedule_next", next=self.ctx.local(view.next_slot))
        return say("schedule", days=days, at=view.at, zone=view.timezone, state=state)

    # ----- what the scheduler sends ---------------------------------------------------------------

    def scheduled_message(self, handle: str, kind: str, week: int | None) -> dict:
        """A check-in, a reminder to reflect, or a mentor's weekly digest, as a notice payload."""
        say = self.ctx.say
        if kind == "checkin":
            pairing = self.port.pairing_of(handle)
            programme = self.ctx.prompts.programmes.get(pairing[1]) if pairing else None
            if programme is not None and week is not None and week <= len(programme.weeks):
                w = programme.weeks[week - 1]
                return {"text": say("checkin_message", checkin=w.checkin, week=week, weeks=len(programme.weeks),
                                    mentor=w.mentor),
                        "choices": [[say("button_checkin_start"), CHECKIN.data("start")],
                                    [say("button_checkin_snooze"), CHECKIN.data("snooze")],
                                    [say("button_checkin_skip"), CHECKIN.data("skip")]]}
        if kind == "digest":
            week_ago = self.ctx.now() - timedelta(days=7)
            lines = []
            for p in self.port.mentees_of(handle):
                answered, skipped = self.port.answered_since(p.handle, week_ago)
                change = say("digest_change", answered=answered, skipped=skipped) if answered or skipped \
                    else say("digest_no_change")
                lines.append(say("digest_line", name=p.name, change=change, week=p.week,
                                 weeks=self._weeks(p.programme), answered=p.answered,
                                 paused=say("paused_suffix") if p.paused else ""))
            return {"text": say("digest_message", lines="\n".join(lines) or say("no_mentees"))}
        return {"text": say("reminder_message"), "choices": [[say("button_reflect_now"), REFLECT.data("new")]]}

    def _weeks(self, programme: str) -> int:
        found = self.ctx.prompts.programmes.get(programme)
        return len(found.weeks) if found else 0

    def waiting_checkin(self, user: str) -> list[Reply]:
        """This week's check-in, if it has come and is still open, unless its notice is about to be shown."""
        if self.port is None or self.ctx.notices is None:
            return []
        if any(n.kind == "checkin" for n in self.ctx.notices.pending(user)):
            return []
        week = self.port.due_week(user, self.ctx.now())
        if week is None:
            return []
        message = self.scheduled_message(user, "checkin", week)
        return [Reply(message["text"], tuple(Choice(label, data) for label, data in message.get("choices", [])))]

    def paired_notices(self, mentor: str, mentee: str, programme: str) -> list[tuple[str, dict]]:
        """What the mentee and the mentor are told when an admin pairs them: (handle, notice) pairs."""
        say, found = self.ctx.say, self.ctx.prompts.programmes[programme]
        mentee_name, mentor_name = self.ctx.journal.display_name(mentee), self.ctx.journal.display_name(mentor)
        view = self.port.schedule(mentee, "checkin")
        schedule = self._describe(view) if view else say("not_yet")
        return [(mentee, {"text": say("paired_mentee", mentor=mentor_name, title=found.title, intro=found.intro,
                                      schedule=schedule)}),
                (mentor, {"text": say("paired_mentor", mentee=mentee_name, title=found.title)})]

    # ----- /checkins and /remind ------------------------------------------------------------------

    def checkins(self, user: str, args: str) -> list[Reply]:
        if self.port is None:
            return [Reply(self.ctx.say("checkins_unavailable"))]
        if self.ctx.tick is not None:
            self.ctx.tick()  # anything due now arrives with this answer (the console has no push)
        if args.strip():
            return self._set_schedule(user, "checkin", args)
        say = self.ctx.say
        pairing, programme = self._programme(user)
        view = self.port.schedule(user, "checkin")
        lines = []
        week = self.port.current_week(user)
        if programme is not None:
            lines.append(say("checkins_programme", title=programme.title, week=min(week, len(programme.weeks)),
                             weeks=len(programme.weeks)))
        lines.append(say("checkins_schedule", schedule=self._describe(view)) if view else say("checkins_none"))
        lines.append(say("checkins_help"))
        waiting = self.waiting_checkin(user)
        choices = ()
        if programme is not None and week <= len(programme.weeks) and not waiting:
            choices = (Choice(say("button_checkin_now"), CHECKIN.data("start")),)
        return waiting + [Reply("\n".join(lines), choices)]

    def _set_schedule(self, user: str, kind: str, args: str) -> list[Reply]:
        parts = args.split()
        if len(parts) < 2:
            return [Reply(self.ctx.say("checkins_usage"))]
        try:
            days = parse_days(parts[0])
            parse_time(parts[1])
        except InputError as exc:
            return [Reply(self.ctx.say(exc.key, **exc.values))]
        zone = parts[2] if len(parts) > 2 else (self.ctx.journal.get_timezone(user) or self.ctx.settings.timezone)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return [Reply(self.ctx.say("timezone_unknown", zone=zone[:60]))]
        at = parse_time(parts[1]).strftime("%H:%M")
        view = self.port.set_schedule(user, kind, days, at, zone, self.ctx.now())
        key = "checkins_set" if kind == "checkin" else "reminder_set"
        return [Reply(self.ctx.say(key, schedule=self._describe(view)))]

    def remind(self, user: str, args: str) -> list[Reply]:
        if self.port is None:
            return [Reply(self.ctx.say("checkins_unavailable"))]
        if args.strip().lower() == "off":
            self.port.stop(user, "reminder")
            return [Reply(self.ctx.say("reminder_off"))]
        if not args.strip():
            view = self.port.schedule(user, "reminder")
            return [Reply(self.ctx.say("reminder_current", schedule=self._describe(view)) if view
                          else self.ctx.say("reminder_usage"))]
        return self._set_schedule(user, "reminder", args)

    # ----- answering, snoozing, skipping, pausing ----------------------------------------------

    def on_button(self, call: Call) -> list[Reply]:
        action = call.values[0]
        if action == "start":
            return self.start(call.user, call.state)
        if action == "snooze":
            return self.snooze(call.user, "2h")
        return self.skip(call.user)

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
        if until is None:
            return [Reply(self.ctx.say("paused"))]
        return [Reply(self.ctx.say("paused_until", until=self.ctx.local_day(until)))]

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
        say = self.ctx.say
        lines = [say("mentees_header")]
        for p in rows:
            weeks = self._weeks(p.programme)
            lines.append(say("mentee_line", name=p.name, week=min(p.week, weeks), weeks=weeks,
                             last=self.ctx.local(p.last_answer) if p.last_answer else say("not_yet"),
                             answered=p.answered, skipped=p.skipped,
                             paused=say("paused_suffix") if p.paused else ""))
        lines.append(say("mentees_footer"))
        return [Reply("\n".join(lines))]

    def addressed_note(self, call: Call) -> list[Reply] | None:
        """"/note NAME TEXT" from a mentor to a mentee, or from a mentee to their mentor; None if neither."""
        first, _, rest = call.args.partition(" ")
        rest = rest.strip()
        if self.port is None or is_blank(rest):
            return None
        mentees = self.port.mentees_of(call.user)
        for p in mentees:
            if _same_person(first, p.name, p.handle):
                return self.replies.post(call.user, "p", p.pairing_id, rest)
        pairing = self.port.pairing(call.user)
        if pairing is not None and _same_person(first, pairing.mentor_name, pairing.mentor):
            return self.replies.post(call.user, "p", pairing.id, rest)
        if "mentor" in self.ctx.roles(call.user):
            # Perhaps meant for someone who isn't their mentee: say so, and keep it rather than lose it.
            names = ", ".join(p.name for p in mentees) or self.ctx.say("nobody")
            return self.journal.save_note(call.user, call.args, call.state) + \
                [Reply(self.ctx.say("note_not_a_mentee", name=first[:40], mentees=names))]
        return None
