"""Time arithmetic for schedules: the next slot in a person's own time zone, safe across daylight saving.

A slot is a local day-and-time turned into one UTC instant. On a spring-forward
day a local time that does not exist fires at the next valid minute; on a
fall-back day a time that happens twice fires once, at its first occurrence.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(text: str) -> tuple[int, ...]:
    """'mon,thu' or 'weekdays' or 'daily' -> weekday numbers (Monday is 0)."""
    text = text.strip().lower()
    if text in ("daily", "every day", "everyday"):
        return tuple(range(7))
    if text == "weekdays":
        return tuple(range(5))
    days = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        key = part[:3]
        if key not in DAYS:
            raise ValueError(f"unknown day {part!r}; use mon, tue, wed, thu, fri, sat, sun")
        days.append(DAYS.index(key))
    if not days:
        raise ValueError("no days given")
    return tuple(sorted(set(days)))


def parse_time(text: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError):
        raise ValueError(f"unknown time {text!r}; use HH:MM, like 09:30") from None


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant `at` happens on `day` in `zone`; a missing time moves to the next valid minute."""
    local = datetime.combine(day, at, tzinfo=zone).replace(fold=0)
    for _ in range(180):
        instant = local.astimezone(timezone.utc)
        back = instant.astimezone(zone)
        if back.replace(tzinfo=None) == local.replace(tzinfo=None):
            return instant
        local += timedelta(minutes=1)  # inside a spring-forward gap
    raise ValueError("no valid local time found")


def next_slot(after: datetime, days: tuple[int, ...], at: time, zone: ZoneInfo) -> datetime:
    """The first slot strictly after `after` (UTC)."""
    local_day = after.astimezone(zone).date()
    for offset in range(0, 15):
        day = local_day + timedelta(days=offset)
        if day.weekday() in days:
            slot = local_to_utc(day, at, zone)
            if slot > after:
                return slot
    raise ValueError("no day selected")


def in_quiet_hours(moment: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """If `moment` falls in quiet hours, when they end (UTC); else None."""
    local = moment.astimezone(zone)
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    end_day = local.date() if t < end else local.date() + timedelta(days=1)
    return local_to_utc(end_day, end, zone)
