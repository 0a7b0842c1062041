"""The scheduler: a tick that turns due schedule rows into check-ins, exactly once, and its APScheduler job.

Schedules are rows, not pickled jobs. A tick reads only rows whose next slot
has come; for each it claims the slot in the ledger (unique per person, kind
and slot, so two ticks at once still send one message), delivers it or records
it as missed when it is older than the grace window, and moves the row to its
next slot. Quiet hours defer a delivery to their end; a snooze sets a new due
time on the ledger row. Delivery is a notification to the person (durable and
encrypted), which every transport shows: Telegram pushes it, the console shows
it at start and on /checkins.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.slots import in_quiet_hours

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    delivered: int = 0
    missed: int = 0
    deferred: int = 0
    duplicates: int = 0


class CheckinScheduler:
    def __init__(self, mentoring, messages, clock, grace: timedelta = timedelta(hours=3),
                 quiet: tuple[time, time] | None = (time(21, 0), time(7, 0))):
        self.mentoring = mentoring
        self.messages = messages  # builds the check-in or reminder message for a person and a week
        self.clock = clock
        self.grace = grace
        self.quiet = quiet
        self._job = None

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or self.clock.now()
        report = TickReport()
        for _ in range(64):  # after downtime a row may be several slots behind: catch up in order
            due = self.mentoring.due_schedules(now)
            if not due:
                break
            for schedule_id, handle, kind, slot, _days, _at, zone, paused, paused_until in due:
                if paused and (paused_until is None or paused_until > slot):
                    self.mentoring.advance(schedule_id, slot)
                    continue
                self._handle_slot(handle, kind, slot, ZoneInfo(zone), now, report)
                self.mentoring.advance(schedule_id, slot)
        for delivery_id, handle, kind, week in self.mentoring.snoozed_due(now):
            # The message is built before the transaction that records it (it reads other tables).
            if self.mentoring.mark_delivered(delivery_id, self.messages(handle, kind, week)):
                report.delivered += 1
        if report.missed:
            log.info("check-ins missed during downtime: %d (older than the grace window)", report.missed)
        return report

    def _handle_slot(self, handle: str, kind: str, slot: datetime, zone: ZoneInfo, now: datetime,
                     report: TickReport) -> None:
        week = self.mentoring.current_week(handle) if kind == "checkin" else None
        if now - slot > self.grace:
            if not self.mentoring.claim(handle, kind, slot, "missed", week, slot):
                report.duplicates += 1
            else:
                report.missed += 1
            return
        quiet_end = in_quiet_hours(slot, zone, *self.quiet) if self.quiet else None
        if quiet_end is not None and quiet_end > now:
            if self.mentoring.claim(handle, kind, slot, "quiet", week, quiet_end):
                report.deferred += 1
            else:
                report.duplicates += 1
            return
        if self.mentoring.claim(handle, kind, slot, "delivered", week, slot,
                                message=self.messages(handle, kind, week)):
            report.delivered += 1
        else:
            report.duplicates += 1

    # ----- the APScheduler job in the bot process ----------------------------------------------

    def start(self, interval_seconds: int = 60, on_tick=None) -> None:
        """Run the tick every minute on the running event loop (AsyncIOScheduler)."""
        self._on_tick = on_tick
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(self._safe_tick, "interval", seconds=interval_seconds, id="spanner-tick",
                          max_instances=1, coalesce=True, next_run_time=datetime.now(tz=ZoneInfo("UTC")))
        scheduler.start()
        self._job = scheduler

    def stop(self) -> None:
        if self._job is not None:
            self._job.shutdown(wait=False)
            self._job = None

    async def _safe_tick(self) -> None:
        try:
            # In a worker thread: a tick with many due check-ins must not hold up people's replies.
            report = await asyncio.to_thread(self.tick)
        except Exception as exc:  # the next tick tries again; nothing is lost
            log.error("scheduler tick failed: %s", type(exc).__name__)
            return
        if report.delivered and getattr(self, "_on_tick", None):
            self._on_tick()  # a transport that pushes (Telegram) sends them now
