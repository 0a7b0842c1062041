"""Succession mentoring: a programme as data, pairing, check-ins on the mentee's schedule exactly once."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.engine.prompt_data import PromptDataError, load_prompt_data
from bot.engine.records import Event
from bot.scheduler.service import CheckinScheduler
from bot.engine.inputs import parse_days
from conftest import ROOT, Chat, FixedClock, run_cli, write_config
from storage.journal import SqlJournal
from storage.mentoring import MentoringStore
from storage.models import Delivery
from storage.people import People
from storage.notices import NoticeStore

UTC = timezone.utc
MARKER = "PANGOLIN-PRIVATE-2231"

pytestmark = pytest.mark.both_databases


def person(journal, handle, role, name=None):
    people = People(journal)
    people.redeem(people.create_invite(role), handle, name or handle.split(":")[1].title())


@pytest.fixture
def paired(make_app):
    clock = FixedClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))  # a Monday
    app = make_app(clock=clock)
    person(app.journal, "console:mia", "mentee")
    person(app.journal, "console:max", "mentor")
    app.mentoring.pair("console:max", "console:mia", "new_spanner", clock.now())
    app.mentoring.set_schedule("console:mia", "checkin", parse_days("mon"), "09:00", "Europe/London", clock.now())
    return app, clock


def test_the_programme_is_twelve_weeks_of_data():
    data = load_prompt_data(ROOT / "prompts")
    programme = data.programmes["new_spanner"]
    assert len(programme.weeks) == 12
    for week in programme.weeks:
        assert week.checkin and week.mentor and 2 <= len(week.questions) <= 3
    assert "checkin:new_spanner:12" in data.protocols


def test_a_malformed_programme_file_names_file_line_and_fix(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    path = prompts / "programmes" / "new_spanner.toml"
    lines = path.read_text().splitlines()
    third = [i for i, ln in enumerate(lines) if ln.strip() == "[[weeks]]"][2]
    mentor_line = next(i for i in range(third, len(lines)) if lines[i].startswith("mentor"))
    lines[mentor_line] = "mentr = \"typo\""
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PromptDataError) as err:
        load_prompt_data(prompts)
    message = str(err.value)
    assert str(path) in message and "weeks.2" in message and "fix:" in message
    assert f"line {mentor_line + 1}" in message or f"line {third + 1}" in message


def _tick_through(scheduler, start: datetime, end: datetime, step=timedelta(minutes=15)):
    t = start
    while t <= end:
        scheduler.tick(t)
        t += step


def _deliveries(journal, handle):
    with journal.sessions() as s:
        from storage.models import User
        uid = s.query(User).filter_by(handle=handle).one().id
        return [(d.slot, d.state) for d in s.query(Delivery).filter_by(user_id=uid).order_by(Delivery.slot)]


def test_a_week_of_checkins_in_two_time_zones(paired):
    app, clock = paired
    person(app.journal, "console:noa", "mentee")
    app.mentoring.pair("console:max", "console:noa", "new_spanner", clock.now())
    app.mentoring.set_schedule("console:mia", "checkin", parse_days("mon,thu"), "09:00", "Europe/London",
                               clock.now())
    app.mentoring.set_schedule("console:noa", "checkin", parse_days("mon"), "09:00", "America/New_York",
                               clock.now())
    _tick_through(app.scheduler, clock.now(), clock.now() + timedelta(days=7))
    mia = _deliveries(app.journal, "console:mia")
    noa = _deliveries(app.journal, "console:noa")
    assert mia == [(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), "delivered"),
                   (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), "delivered")]
    assert noa == [(datetime(2026, 11, 23, 14, 0, tzinfo=UTC), "delivered")]  # 09:00 in New York
    assert len(NoticeStore(app.journal).take("console:mia")) >= 2


def test_downtime_inside_the_grace_window_delivers_once_and_older_is_skipped(paired):
    app, clock = paired
    scheduler = app.scheduler
    report = scheduler.tick(datetime(2026, 11, 23, 11, 30, tzinfo=UTC))  # down from 08:00 to 11:30
    assert report.delivered == 1
    assert scheduler.tick(datetime(2026, 11, 23, 11, 31, tzinfo=UTC)).delivered == 0
    late = scheduler.tick(datetime(2026, 12, 1, 12, 30, tzinfo=UTC))  # next Monday's slot, 3.5 h late
    assert late.delivered == 0 and late.missed == 1
    assert [s for _, s in _deliveries(app.journal, "console:mia")] == ["delivered", "missed"]


def test_the_tick_run_twice_and_concurrently_still_delivers_once(paired, tmp_path, open_journal):
    app, clock = paired
    data_dir = app.config.data_dir
    at = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
    journals = [open_journal(data_dir) for _ in range(4)]
    schedulers = [CheckinScheduler(MentoringStore(j), lambda h, k, w: {"text": "check-in"}, clock)
                  for j in journals]
    barrier = threading.Barrier(len(schedulers))
    reports = []

    def run(s):
        barrier.wait()
        reports.append(s.tick(at))
    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    app.scheduler.tick(at)  # and once more, afterwards
    assert sum(r.delivered for r in reports) == 1
    assert len(NoticeStore(app.journal).take("console:mia")) == 1
    for j in journals:
        j.close()


@pytest.mark.parametrize("start, days", [(datetime(2026, 3, 27, 12, tzinfo=UTC), 5),
                                         (datetime(2026, 10, 23, 12, tzinfo=UTC), 5)])
def test_daylight_saving_changes_in_2026_never_double_fire_or_skip_a_day(paired, start, days):
    app, clock = paired
    app.mentoring.set_schedule("console:mia", "checkin", parse_days("daily"), "01:30", "Europe/London", start)
    scheduler = CheckinScheduler(app.mentoring, lambda h, k, w: {"text": "x"}, clock, quiet=None)
    _tick_through(scheduler, start, start + timedelta(days=days), step=timedelta(minutes=10))
    slots = [slot for slot, state in _deliveries(app.journal, "console:mia") if state == "delivered"]
    local_days = [slot.astimezone(ZoneInfo("Europe/London")).date() for slot in slots]
    assert len(local_days) == len(set(local_days)) == days  # one a day, every day
    if start.month == 3:
        # 01:30 does not exist on 29 March: it fires at the next valid minute, 02:00 BST (01:00 UTC).
        assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) in slots
    else:
        # 01:30 happens twice on 25 October: once only, at the first.
        assert datetime(2026, 10, 25, 0, 30, tzinfo=UTC) in slots
        assert datetime(2026, 10, 25, 1, 30, tzinfo=UTC) not in slots


def test_quiet_hours_defer_a_checkin_to_the_morning(paired):
    app, clock = paired
    app.mentoring.set_schedule("console:mia", "checkin", parse_days("mon"), "22:30", "Europe/London", clock.now())
    app.scheduler.tick(datetime(2026, 11, 23, 22, 31, tzinfo=UTC))
    assert NoticeStore(app.journal).take("console:mia") == []
    app.scheduler.tick(datetime(2026, 11, 24, 7, 1, tzinfo=UTC))
    assert len(NoticeStore(app.journal).take("console:mia")) == 1


def test_snooze_skip_pause_and_resume(paired):
    app, clock = paired
    mia = Chat(app, "mia")
    clock.moment = datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    app.scheduler.tick()
    texts = mia.say("/start")
    assert any("Week 1: mapping your boundaries" in t for t in texts)
    assert "Snoozed" in mia.say("/snooze 2h")[0]
    clock.moment += timedelta(hours=1)
    app.scheduler.tick()
    assert not any("Week 1" in t for t in mia.say("/journal"))
    clock.moment += timedelta(hours=1, minutes=1)
    app.scheduler.tick()
    assert any("Week 1: mapping your boundaries" in t for t in mia.say("/journal"))
    assert mia.say("/skip") == ["Week 1 skipped. The next check-in brings the next week."]
    assert "week 2 of 12" in mia.say("/checkins")[0]
    assert "paused until" in mia.say("/pause 2026-12-20")[0]
    clock.moment = datetime(2026, 11, 30, 9, 1, tzinfo=UTC)
    app.scheduler.tick()
    assert not any("Week 2" in t for t in mia.say("/journal"))  # paused: nothing came
    assert mia.say("/resume") == ["Check-ins are back on."]
    clock.moment = datetime(2026, 12, 7, 9, 1, tzinfo=UTC)
    app.scheduler.tick()
    assert any("Week 2: reputation and trust" in t for t in mia.say("/journal"))


def test_answering_a_checkin_saves_an_entry_linked_to_its_week_and_the_mentor_sees_only_progress(paired):
    app, clock = paired
    mia, max_ = Chat(app, "mia"), Chat(app, "max")
    clock.moment = datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    app.scheduler.tick()
    mia.say("/start")
    replies = mia.loop.run_until_complete(app.engine.handle(Event(user=mia.user, choice="ci:start")))
    assert any("Which boundaries did you cross" in r.text for r in replies)
    for answer in (f"The council and the trust, {MARKER}.", "The ward managers.", "Discharge at weekends."):
        mia.say(answer)
        state = app.journal.load_state(mia.user)["reflect"]
        if state["phase"] == "followup":
            mia.say("/skip")
    mia.skip_to_review()
    assert mia.say("save")[0].startswith("Saved as entry #1")
    entry = app.journal.get_entry(mia.user, 1)
    assert entry.week == 1 and entry.protocol == "checkin:new_spanner:1"
    assert entry.answers[0].answer.endswith(f"{MARKER}.")
    assert "week 2 of 12" in mia.say("/checkins")[0]
    progress = max_.say("/mentees")[0]
    assert re.search(r"Mia: week 2 of 12; last check-in answered \w{3} \d\d \w{3} \d{4}", progress)
    assert MARKER not in progress
    assert max_.say("/note Mia How did the first week feel?") == ["Sent to Mia."]
    got = mia.say("/journal")
    assert got[0].startswith("A note from Max, your mentor: How did the first week feel?")
    assert mia.say(mia.replies[-2].choices[0].label)[0].startswith("Type your answer to Max")
    assert mia.say("Busy but useful.") == ["Sent to Max."]
    assert max_.say("/help")[0].startswith("A note from Mia, your mentee: Busy but useful.")
    assert app.journal.count_entries(mia.user) == 1  # the answer went to Max, not into a stray note
    for r in max_.replies:
        assert MARKER not in r.text


def test_a_spanner_who_is_not_a_mentee_can_set_a_reflection_reminder(make_app):
    clock = FixedClock(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))  # Tuesday
    app = make_app(clock=clock)
    sam = Chat(app, "sam")
    assert "remind you to reflect" in sam.say("/remind tue,fri 17:00")[0]
    clock.moment = datetime(2026, 11, 24, 17, 1, tzinfo=UTC)
    app.scheduler.tick()
    texts = sam.say("/checkins")
    assert any("Time for a short reflection" in t for t in texts)
    assert "Reminders are off" in sam.say("/remind off")[0]


def test_the_real_apscheduler_job_runs_the_tick(paired):
    app, clock = paired
    clock.moment = datetime(2026, 11, 23, 9, 1, tzinfo=UTC)

    async def scenario():
        app.scheduler.start(interval_seconds=1)
        await asyncio.sleep(1.5)
        app.scheduler.stop()
    asyncio.run(scenario())
    assert len(NoticeStore(app.journal).take("console:mia")) == 1


def test_pair_unpair_and_succession_from_the_command_line(tmp_path, data_dir, model_path, storage_url,
                                                          open_journal):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path, storage_url=storage_url)
    journal = open_journal(data_dir)
    person(journal, "console:mia", "mentee")
    person(journal, "console:max", "mentor")
    person(journal, "console:eve", "mentor")
    journal.close()
    args = ["--config", str(cfg)]
    result = run_cli(["admin", "pair", "console:max", "console:mia", *args])
    assert result.returncode == 0, result.stderr.decode()
    wrong = run_cli(["admin", "pair", "console:mia", "console:max", *args])
    assert wrong.returncode == 2 and "not mentor" in wrong.stderr.decode()
    report = run_cli(["admin", "succession", *args]).stdout.decode()
    assert "1 mentors" not in report and "mentor Max: 1 mentee(s)" in report
    assert "none of whose mentees has reached the final third of the programme yet (no one nearly ready to " \
        "take over): Max" in report and "mentors with no mentee at the moment: Eve" in report
    chat = run_cli(["chat", "--config", str(cfg), "--user", "mia"], b"/checkins\n").stdout.decode()
    assert "with Max as your mentor" in chat and "week 1 of 12" in chat
    mentor = run_cli(["chat", "--config", str(cfg), "--user", "max"], b"/mentees\n").stdout.decode()
    assert "You are now mentoring Mia" in mentor and "Mia: week 1 of 12" in mentor
    assert run_cli(["admin", "unpair", "console:max", "console:mia", *args]).returncode == 0
    assert run_cli(["admin", "unpair", "console:max", "console:mia", *args]).returncode == 2


def test_the_weekly_digest_tells_the_mentor_what_changed_without_content(paired):
    app, clock = paired
    app.journal.apply("console:mia", [("week", 1, "answered")], {})
    clock.moment = datetime.now(UTC)  # the ledger stamps real time; the digest looks back a week from the clock
    digest = app.engine.mentoring.scheduled_message("console:max", "digest", None)["text"]
    assert "Mia: this week 1 answered, 0 skipped; on week 2 of 12, 1 answered in all" in digest
    view = app.mentoring.set_schedule("console:max", "digest", parse_days("mon"), "08:00", "Europe/London",
                                      clock.now())
    app.scheduler.tick(view.next_slot + timedelta(minutes=5))
    (note,) = NoticeStore(app.journal).take("console:max")
    assert note["text"].startswith("Your weekly mentoring digest")
