"""Time arithmetic for schedule rows: the next slot in a person's own time zone, safe across daylight saving.

A slot is a local day-and-time turned into one UTC instant. On a spring-forward
day a local time that does not exist fires at the next valid minute; on a
fall-back day a time that happens twice fires once, at its first occurrence.
Reading what a person typed ("mon,thu", "09:30") is the engine's job (bot.engine.inputs).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


def clock_time(text: str) -> time:
    """A stored "HH:MM" as a time of day (input was checked when it was typed)."""
    hours, minutes = text.strip().split(":")
    return time(int(hours), int(minutes))


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
