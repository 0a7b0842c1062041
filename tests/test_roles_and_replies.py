"""Every role on the console: roles and names, replies that arrive, comments kept with entries, notices,
check-ins, help by role, /cancel, and the two whole stories (mentoring, supervision) end to end."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from bot.engine.records import Event
from conftest import ROOT, SPANNER, Chat, FixedClock, every_file_bytes, run_cli, write_config
from storage.journal import SqlJournal
from storage.people import People

UTC = timezone.utc
SECRET = "QUOKKA-ONLY-MINE-5521"


def person(app, handle: str, *roles: str, name: str = "") -> None:
    """Someone who has chatted once (a console person appears then), holding exactly these roles."""
    app.journal.ensure_user(handle, name or handle.split(":")[1].title())
    for role in roles:
        app.people.set_role(handle, role)
    if "spanner" not in roles:
        app.people.set_role(handle, "spanner", remove=True)


def texts_of(chat: Chat) -> str:
    return "\n".join(r.text for r in chat.replies)


@pytest.fixture
def monday(make_app):
    clock = FixedClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))  # a Monday, before the 09:00 check-in
    return make_app(clock=clock), clock


@pytest.fixture
def mentoring(monday):
    """Max mentors Mia, whose check-ins come on Mondays at 09:00; it is Monday, 08:00."""
    app, clock = monday
    person(app, "console:max", "spanner", "mentor")
    person(app, "console:mia", "spanner")
    pair(app, clock)
    return app, clock


def pair(app, clock, mentor="console:max", mentee="console:mia"):
    from bot.engine.inputs import parse_days
    app.mentoring.pair(mentor, mentee, "new_spanner", clock.now())
    app.mentoring.set_schedule(mentee, "checkin", parse_days("mon"), "09:00", "Europe/London", clock.now())


def open_console(chat: Chat) -> list[str]:
    """What `spanner chat` does on start: deliver what is due, then greet."""
    chat.app.scheduler.tick()
    return chat.say("/start")


# ----- roles and names ------------------------------------------------------------------------------

def test_admin_role_gives_console_and_telegram_people_several_roles(tmp_path, data_dir, model_path):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    journal = SqlJournal.open(data_dir)
    journal.ensure_user("console:jo", "Jo")
    people = People(journal)
    people.redeem(people.create_invite("spanner"), "telegram:503", "Casey")
    journal.close()
    args = ["--config", str(cfg)]
    given = run_cli(["admin", "role", "jo", "mentor", *args])
    assert given.returncode == 0 and "console:jo now holds: spanner, mentor" in given.stdout.decode()
    assert run_cli(["admin", "role", "503", "supervisor", *args]).returncode == 0
    assert run_cli(["admin", "role", "console:ann", "supervisor", *args]).returncode == 0  # before her first chat
    users = run_cli(["admin", "users", *args]).stdout.decode()
    assert re.search(r"console:jo\s+spanner,mentor\s", users)
    assert re.search(r"telegram:503\s+spanner,supervisor\s", users)
    assert re.search(r"console:ann\s+supervisor\s", users)
    taken = run_cli(["admin", "role", "telegram:503", "supervisor", "--remove", *args])
    assert "telegram:503 now holds: spanner" in taken.stdout.decode()


def test_admin_commands_take_a_person_as_users_shows_them_and_name_who_is_missing(tmp_path, data_dir, model_path):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    journal = SqlJournal.open(data_dir)
    for handle in ("console:jo", "console:bob", "console:503"):
        journal.ensure_user(handle)
    people = People(journal)
    people.set_role("console:jo", "mentor")
    people.redeem(people.create_invite("spanner"), "telegram:503", "Casey")
    journal.close()
    args = ["--config", str(cfg)]
    assert run_cli(["admin", "pair", "jo", "bob", *args]).returncode == 0  # no prefix needed
    assert run_cli(["admin", "unpair", "console:jo", "bob", *args]).returncode == 0
    missing = run_cli(["admin", "pair", "jo", "nobody", *args])
    assert missing.returncode == 2 and "no person 'nobody'" in missing.stderr.decode()
    ambiguous = run_cli(["admin", "revoke", "503", *args])
    assert ambiguous.returncode == 2 and "console:503 or telegram:503" in ambiguous.stderr.decode()
    assert run_cli(["admin", "revoke", "Casey", *args]).returncode == 0  # the display name, when unique
    wrong = run_cli(["admin", "supervise", "bob", "jo", *args])
    assert wrong.returncode == 2 and "console:bob holds spanner" in wrong.stderr.decode()
    assert "spanner admin role console:bob supervisor" in wrong.stderr.decode()


def test_start_with_an_invite_code_on_the_console_gives_its_role(app):
    code = app.people.create_invite("mentor")
    jo, bob = Chat(app, "jo"), Chat(app, "bob")
    jo.say("/start")
    assert jo.say(f"/start {code}") == ["Welcome in: you now hold the role mentor. /help shows your commands first."]
    assert app.people.roles("console:jo") == ("spanner", "mentor")
    assert "/mentees" in jo.say("/help")[0].split("Also")[0]
    assert "already been used" in bob.say(f"/start {code}")[0]
    assert "already been used" in bob.say("/start not-a-code")[0]
    assert app.people.roles("console:bob") == ("spanner",)


# ----- replies and notices ----------------------------------------------------------------------------

def test_a_mentee_answers_a_mentor_note_by_button_or_reply_and_nothing_becomes_a_stray_note(mentoring):
    app, clock = mentoring
    max_, mia = Chat(app, "max"), Chat(app, "mia")
    assert max_.say("/note mia How did the first week feel?") == ["Sent to Mia."]
    got = open_console(mia)
    note = next(r for r in mia.replies if r.text.startswith("A note from Max, your mentor"))
    assert [c.label for c in note.choices] == ["Reply"]
    assert got[-1].startswith("Hello")  # the greeting came after the note, and the note kept its button
    assert mia.say("Reply") == ["Type your answer to Max. It goes to them, and stays with the conversation. "
                                "(/cancel to stop.)"]
    assert mia.say("Busy but useful.") == ["Sent to Max."]
    assert max_.say("/journal")[0].startswith("A note from Mia, your mentee: Busy but useful.")
    assert max_.say("/reply What was hardest?") == ["Sent to Mia."]
    assert mia.say("/reply Saying no to the ward.")[-1] == "Sent to Max."
    assert "Saying no to the ward." in max_.say("/journal")[0]
    assert app.journal.count_entries(mia.user) == 0 and app.journal.count_entries(max_.user) == 0
    # The mentee writes to their mentor by name, too.
    assert mia.say("/note Max Thanks for the map exercise.") == ["Sent to Max."]
    assert app.journal.count_entries(mia.user) == 0


def test_a_mentors_note_to_someone_who_isnt_their_mentee_says_so_and_loses_nothing(monday):
    app, clock = monday
    person(app, "console:max", "spanner", "mentor")
    person(app, "console:mia", "spanner")
    person(app, "console:bob", "spanner")
    pair(app, clock)
    max_ = Chat(app, "max")
    texts = max_.say("/note bob hello")
    assert texts[0].startswith("Saved as quick note #1")
    assert "\"bob\" isn't one of your mentees (yours: Mia)" in texts[1]
    assert app.journal.get_entry(max_.user, 1).note == "bob hello"
    assert Chat(app, "bob").say("/journal") == ["Your journal is empty so far. /reflect after a meeting, "
                                                "or send a quick note."]
    assert Chat(app, "alex").say("/note Met the discharge team today.")[0].startswith("Saved as quick note #1")


def test_reply_with_nothing_to_answer_says_so_and_saves_nothing(chat):
    assert chat.say("/reply Thanks!")[0].startswith("There's nothing to answer yet")
    assert chat.say("/reply 3 Thanks!")[0].startswith("There's nothing to answer yet")
    assert chat.app.journal.count_entries(chat.user) == 0


# ----- comments, notices and privacy ------------------------------------------------------------------

@pytest.fixture
def supervised(app):
    person(app, "console:ana", "spanner")
    person(app, "console:sue", "supervisor")
    app.sharing.supervise("console:sue", "console:ana")
    return app, Chat(app, "ana"), Chat(app, "sue")


def share_first(ana: Chat, labels: str = "No") -> None:
    ana.say("/share 1")
    ana.say("Whole entry")
    ana.say("Replace names with labels" if labels == "Yes" else "Keep names")
    assert ana.say("Share it") == ["Entry #1 is shared. /unshare 1 takes it back at any time; /access shows who "
                                   "read it."]


def test_comments_and_answers_stay_with_the_entry_and_show_as_a_thread(supervised):
    app, ana, sue = supervised
    ana.say("Estates meeting: parking again.")
    share_first(ana)
    sue.say("/journal")  # the notice arrives with whatever she sends
    sue.say("Read it")
    sue.say("Comment")
    assert sue.say("Who holds the parking budget?") == ["Sent to Ana."]
    assert ana.say("/reply 1 The estates director.")[-1] == "Sent to Sue."
    shown = ana.say("/show 1")[0]
    thread = shown.split("Comments:")[1]
    assert "Sue (" in thread and "Who holds the parking budget?" in thread
    assert "You (" in thread and "The estates director." in thread
    assert thread.index("Who holds") < thread.index("The estates director")
    assert app.journal.count_entries(ana.user) == 1  # the answer is in the thread, not a note
    # The supervisor sees the same thread under the shared entry.
    sue.say("/review")  # Ana's answer arrives as a notice first, with its own Answer button
    read = sue.say(next(c.label for c in sue.console._choices if c.label.startswith("Read")))[-1]
    assert "You (" in read and "Who holds the parking budget?" in read and "Ana (" in read
    # Unshared and shared again: the thread is still the entry's.
    ana.say("/unshare 1")
    share_first(ana)
    assert "The estates director." in ana.say("/show 1")[0]


def test_people_are_told_when_a_supervisor_is_linked_and_when_something_is_shared(app):
    person(app, "console:ana", "spanner")
    person(app, "console:sue", "supervisor")
    ana, sue = Chat(app, "ana"), Chat(app, "sue")
    for handle, notice in app.engine.sharing.supervision_notices("console:sue", "console:ana"):
        app.notices.notify(handle, notice, kind="linked")
    app.sharing.supervise("console:sue", "console:ana")
    assert ana.say("A note.")[0].startswith("Sue is now your supervisor. Nothing is shared with them unless")
    assert sue.say("/team")[0].startswith("You now supervise Ana.")
    share_first(ana)
    told = sue.say("/help")[0]
    assert told.startswith("Ana shared entry #1 with you (whole entry).")
    assert sue.say("Read it")[-1].startswith("Ana, entry #1:")
    assert "Sue (supervisor) read #1" in ana.say("/access")[0]


def test_privacy_lists_what_is_shared_now_and_with_whom(supervised):
    app, ana, sue = supervised
    ana.say("A note to share.")
    assert "you alone" in ana.say("/privacy")[0]
    share_first(ana)
    privacy = ana.say("/privacy")[0]
    assert "you alone" not in privacy and "Nobody else can read" not in privacy
    assert "#1 with Sue (supervisor), whole entry, since" in privacy
    ana.say("/unshare 1")
    assert "you alone" in ana.say("/privacy")[0]


# ----- check-ins ----------------------------------------------------------------------------------------

def test_pause_until_a_date_or_a_date_shows_paused_until_and_no_next_slot(mentoring):
    app, clock = mentoring
    mia = Chat(app, "mia")
    for words in ("/pause until 2026-12-14", "/pause 2026-12-14"):
        assert mia.say(words) == ["Check-ins paused until Mon 14 Dec 2026."]
        schedule = mia.say("/checkins")[0]
        assert "paused until Mon 14 Dec 2026" in schedule and "next:" not in schedule
    assert mia.say("/pause whenever")[0].startswith("Pause until when?")
    assert mia.say("/resume") == ["Check-ins are back on."]
    assert "next: Mon 23 Nov 2026 09:00" in mia.say("/checkins")[0]


def test_a_due_checkin_appears_at_start_and_on_checkins_without_a_second_message(mentoring):
    app, clock = mentoring
    mia = Chat(app, "mia")
    clock.moment = datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    # /checkins runs the tick: the check-in that falls due comes with this very answer.
    replies = mia.loop.run_until_complete(mia.console.send("/checkins"))
    assert replies[0].text.startswith("Week 1: mapping your boundaries")
    assert [c.label for c in replies[0].choices] == ["Start check-in", "Snooze 2h", "Skip this week"]
    assert "week 1 of 12" in replies[1].text and len(replies) == 2
    # Not answered yet: the next session's greeting brings it back, and /checkins shows it once.
    clock.advance(hours=30)  # long past the grace window
    assert any(t.startswith("Week 1: mapping your boundaries") for t in open_console(mia))
    again = mia.say("/checkins")
    assert sum(t.startswith("Week 1: mapping") for t in again) == 1
    # Snoozed: not due until then.
    assert mia.say("Snooze 2h")[0].startswith("Snoozed.")
    assert not any(t.startswith("Week 1") for t in mia.say("/checkins"))


def test_a_checkin_entry_is_labelled_with_its_week_and_the_mentor_sees_the_week_and_date(mentoring):
    app, clock = mentoring
    mia, max_ = Chat(app, "mia"), Chat(app, "max")
    clock.moment = datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    open_console(mia)
    mia.say("Start check-in")
    mia.say(f"The council and the trust, {SECRET}.")
    mia.skip_to_review()
    assert mia.say("save")[0].startswith("Saved as entry #1")
    assert re.search(r"#1 · [^·]+ · Check-in, week 1: ", mia.say("/journal")[0])
    assert mia.say("/show 1")[0].startswith("#1 · Check-in, week 1 · ")
    mentees = max_.say("/mentees")[0]
    # The date is when the entry was saved (storage stamps real time).
    assert re.search(r"Mia: week 2 of 12; last check-in answered \w{3} \d\d \w{3} \d{4} \d\d:\d\d; "
                     r"1 answered, 0 skipped", mentees)
    assert SECRET not in texts_of(max_)


def test_succession_names_mentors_none_of_whose_mentees_has_reached_the_final_third(monday):
    app, clock = monday
    for handle in ("console:max", "console:eve", "console:ida"):
        person(app, handle, "mentor")
    for handle in ("console:mia", "console:noa"):
        person(app, handle, "spanner")
    pair(app, clock, "console:max", "console:mia")
    pair(app, clock, "console:eve", "console:noa")
    for week in range(1, 9):  # Noa has finished eight of twelve weeks: she is on week 9, the final third
        app.journal.apply("console:noa", [("week", week, "answered")], {})
    report = app.mentoring.succession(clock.now(), 3, 4, lambda name: 12)
    assert report["none_near_ready"] == ["Max"]
    assert report["idle_mentors"] == ["Ida"]


# ----- help and control --------------------------------------------------------------------------------

def _own_and_also(text: str) -> tuple[str, str]:
    own, _, also = text.partition("Also (for other roles):")
    return own, also


def test_help_shows_the_commands_of_ones_own_roles_first_and_the_rest_under_also(app):
    person(app, "console:sue", "supervisor")
    person(app, "console:max", "spanner", "mentor")
    own, also = _own_and_also(Chat(app, "sue").say("/help")[0])
    assert "/review" in own and "/team" in own and "/reply" in own and "/privacy" in own
    assert "/reflect" in also and "/mentees" in also and "/checkins" in also
    own, also = _own_and_also(Chat(app, "max").say("/help")[0])
    assert "/reflect" in own and "/mentees" in own and "/note TEXT" in own
    assert "/review" in also and "/checkins" in also and "/mentees" not in also


def test_cancel_asks_before_dropping_a_reflection_with_answers(chat):
    chat.say("/reflect")
    assert chat.say("/cancel") == ["Stopped. That reflection was not saved. /reflect starts a new one when "
                                   "you're ready."]  # no answers yet: nothing to lose
    chat.say("/reflect")
    chat.say("Budget meeting with the council.")
    asked = chat.say("/cancel")[0]
    assert asked.startswith("Drop the reflection you started on") and "(question 2 of 9)" in asked
    assert chat.say("No, keep it for /resume")[0].startswith("Kept.")
    assert chat.app.journal.load_state(chat.user)["reflect"]["answers"]["meeting"]["answer"]
    chat.say("/cancel")
    texts = chat.say("The ward wanted speed.")  # going on with it keeps it, and this is the next answer
    assert texts[0].startswith("Kept.")
    assert chat.app.journal.load_state(chat.user)["reflect"]["answers"]["wants"]["answer"] == "The ward wanted speed."
    chat.say("/cancel")
    assert chat.say("yes")[0].startswith("Stopped.")
    assert "reflect" not in chat.app.journal.load_state(chat.user)


def test_the_model_notice_appears_only_when_the_model_is_really_unavailable(make_app, make_config, tmp_path):
    # The model writes follow-ups only under the "model" strategy (the default is curated: no model at all).
    model = {"reflection.followup_strategy": "model"}
    off = Chat(make_app(make_config(**{"llm.enabled": False}, **model), clock=FixedClock()))
    off.say("/reflect")
    off.say("Discharge meeting with the ward manager.")
    texts = off.say("The ward wanted speed; social care wanted notice.")
    assert not any("isn't available" in t for t in texts)  # switched off on purpose: nothing to announce
    missing = Chat(make_app(make_config(**{"llm.model_path": str(tmp_path / "nowhere.gguf")}, **model),
                            clock=FixedClock()))
    missing.say("/reflect")
    missing.say("Discharge meeting with the ward manager.")
    notice = next(t for t in missing.say("The ward wanted speed.") if "isn't available" in t)
    assert notice.startswith("(A small note:") and "saved as usual" in notice


# ----- one place per command ---------------------------------------------------------------------------

def test_every_command_is_in_help_and_the_menu_and_every_button_family_has_one_handler(app, tmp_path):
    import bot.engine as engine_package
    from bot.engine.registry import Button
    registry = app.engine.registry
    names = set(registry.commands)
    assert names == {name for name, _ in app.engine.menu()}
    for roles in (("spanner",), ("supervisor",), ("mentee",), ("mentor", "spanner")):
        handle = f"console:{'-'.join(roles)}"
        person(app, handle, *roles)
        chat = Chat(app, handle.split(":")[1])
        chat.console.files_dir = tmp_path  # /export writes its files here
        text = chat.say("/help")[0]
        for name in names:
            assert re.search(rf"^/{name}\b", text, re.M), f"/{name} missing from /help for {roles}"
            assert "I don't know the command" not in " ".join(chat.say(f"/{name}"))
    # Every button family defined in the engine is registered, once, and no prefix is shared.
    families = {}
    import importlib
    import pkgutil
    for module in pkgutil.iter_modules(engine_package.__path__):
        for value in vars(importlib.import_module(f"bot.engine.{module.name}")).values():
            if isinstance(value, Button):
                assert families.setdefault(value.prefix, value) is value, f"prefix {value.prefix} defined twice"
    assert set(families) == set(registry.buttons)
    assert all(registry.buttons[p][0] is families[p] for p in families)
    assert set(registry.pending) >= {"delete", "edit", "share", "forget", "reply", "cancel"}


def test_a_command_without_its_words_in_prompts_stops_start_up_naming_file_and_fix(make_config, tmp_path):
    import shutil

    from bot.compose import build_app
    from bot.engine.prompt_data import PromptDataError
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    path = prompts / "commands.toml"
    text = path.read_text()
    path.write_text(text.replace('[mentees]\nusage = "/mentees"', '[mentors]\nusage = "/mentors"'))
    with pytest.raises(PromptDataError, match=r"commands.toml: \[mentees\]: missing; fix: add \[mentees\]"):
        build_app(make_config(**{"paths.prompts_dir": str(prompts), "llm.enabled": False}))
    path.write_text(text.replace('usage = "/journal"', 'usage = "journal"'))
    with pytest.raises(PromptDataError, match=r"commands.toml: line \d+: \[journal\] usage"):
        build_app(make_config(**{"paths.prompts_dir": str(prompts), "llm.enabled": False}))


def test_every_button_people_are_shown_finds_its_handler(supervised):
    app, ana, sue = supervised
    ana.say("/reflect")
    ana.say("A meeting.")
    ana.say("/cancel")
    ana.say("Yes, drop it")
    ana.say("A note.")
    ana.say("/delete 1")
    ana.say("No, keep it")
    ana.say("/edit 1")
    ana.say("/cancel")
    share_first(ana)
    sue.say("/review")
    sue.say(sue.console._choices[0].label)
    ana.say("/forget")
    ana.say("No, keep it")
    shown = [c.data for chat in (ana, sue) for r in chat.replies for c in r.choices]
    assert len(shown) > 15
    assert [d for d in shown if app.engine.registry.find_button(d) is None] == []


# ----- scripts -----------------------------------------------------------------------------------------

def test_the_readme_piped_examples_work_as_written(tmp_path, data_dir, model_path):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    readme = (ROOT / "README.md").read_text()
    examples = re.findall(r"^(printf .*\| \.venv/bin/spanner chat .*)$", readme, re.M)
    assert examples, "the README shows a piped session"
    for line in examples:
        command = line.replace(".venv/bin/spanner", SPANNER)
        done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=300,
                              env={"SPANNER_CONFIG": str(cfg), "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr.decode()
        out = done.stdout.decode()
        assert "Saved as entry #1" in out, out[-2000:]
    journal = SqlJournal.open(data_dir)
    entry = journal.get_entry("console:alex", 1)
    by_step = {a.step_id: a.answer for a in entry.answers}
    assert by_step["engagement"] == "Persuading" and by_step["level"] == "Tactical"
    journal.close()


# ----- the whole stories ---------------------------------------------------------------------------------

def test_the_whole_mentoring_story_on_the_console(tmp_path, data_dir, model_path, make_app, make_config):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    args = ["--config", str(cfg)]
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    app = make_app(make_config(), clock=clock)
    max_, mia = Chat(app, "max"), Chat(app, "mia")
    open_console(max_)
    open_console(mia)
    # 1. Roles given (by the admin, on the command line); pair; the mentee sees her check-ins.
    assert run_cli(["admin", "role", "max", "mentor", *args]).returncode == 0
    paired = run_cli(["admin", "pair", "max", "mia", *args])
    assert paired.returncode == 0, paired.stderr.decode()
    assert "now also holds the role mentee" in paired.stdout.decode()
    told = open_console(mia)
    assert any("with max as your mentor" in t and "Your check-ins: Mon at 09:00 (Europe/London)" in t
               for t in told)
    assert "week 1 of 12" in mia.say("/checkins")[-1]
    # 2. The check-in falls due (the clock moves to its slot), appears, and is answered.
    clock.moment = app.mentoring.schedule(mia.user, "checkin").next_slot + timedelta(minutes=1)
    greeting = open_console(mia)
    assert any(t.startswith("Week 1: mapping your boundaries") for t in greeting)
    assert "Which boundaries did you cross" in mia.say("Start check-in")[-1]
    mia.say(f"The council and the trust, {SECRET}.")
    mia.skip_to_review()
    assert mia.say("save")[0].startswith("Saved as entry #1")
    assert "Check-in, week 1" in mia.say("/journal")[0]
    # 3. The mentor's /mentees shows week 2.
    open_console(max_)
    mentees = max_.say("/mentees")[0]
    assert "mia: week 2 of 12; last check-in answered" in mentees and "1 answered" in mentees
    # 4. The mentor sends a note, the mentee replies, the mentor sees the reply.
    assert max_.say("/note Mia How did week one land?") == ["Sent to mia."]
    open_console(mia)
    assert mia.say("Reply")[0].startswith("Type your answer to max")
    assert mia.say("It helped to draw the map.") == ["Sent to max."]
    assert any(t.startswith("A note from mia, your mentee: It helped to draw the map.") for t in open_console(max_))
    assert SECRET not in texts_of(max_)
    assert app.journal.count_entries(mia.user) == 1
    # Her export holds the conversation with her mentor, both ways; the disk holds none of it in plain text.
    export = json.loads(app.engine.sharing.export(mia.user)[1].attachment.data)
    assert [(n["from"], n["text"]) for n in export["notes"]] == [("mentor", "How did week one land?"),
                                                                 ("you", "It helped to draw the map.")]
    assert export["entries"][0]["week"] == 1 and "mentee" in export["person"]["roles"]
    for path, raw in every_file_bytes(data_dir):
        assert b"draw the map" not in raw and SECRET.encode() not in raw, path


def test_the_whole_supervision_story_on_the_console(tmp_path, data_dir, model_path, make_app, make_config):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    args = ["--config", str(cfg)]
    app = make_app(make_config(), clock=FixedClock())
    ana, sue = Chat(app, "ana"), Chat(app, "sue")
    open_console(ana)
    open_console(sue)
    ana.say("Met Priya Shah from Northshire Council about the discharge pathway.")
    # 1. Role and link given.
    assert run_cli(["admin", "role", "sue", "supervisor", *args]).returncode == 0
    linked = run_cli(["admin", "supervise", "sue", "ana", *args])
    assert linked.returncode == 0, linked.stderr.decode()
    assert open_console(ana)[0].startswith("sue is now your supervisor.")
    assert open_console(sue)[0].startswith("You now supervise ana.")
    # 2. Share with names replaced; the supervisor reads and comments.
    ana.say("/share 1")
    ana.say("Whole entry")
    preview = ana.say("Replace names with labels")[0]
    assert "Priya" not in preview and "Northshire" not in preview and "Person A" in preview
    ana.say("Share it")
    assert open_console(sue)[0].startswith("ana shared entry #1 with you (whole entry).")
    read_button = next(c for c in sue.console._choices if c.label == "Read it")
    shown = sue.say("Read it")[-1]
    assert "Person A from Organisation A" in shown and "Priya" not in shown
    sue.say("Comment")
    assert sue.say("What would help Person A most next week?") == ["Sent to ana."]
    # 3. The spanner sees the comment in /show and replies; /privacy lists the share.
    comment = open_console(ana)[0]
    assert comment.startswith("sue, your supervisor, commented on entry #1: What would help Person A most")
    assert "What would help Person A most next week?" in ana.say("/show 1")[0]
    assert ana.say("/reply 1 A shared pathway draft.") == ["Sent to sue."]
    assert "#1 with sue (supervisor), whole entry" in ana.say("/privacy")[0]
    assert any(t.startswith("ana answered on entry #1: A shared pathway draft.") for t in open_console(sue))
    thread = ana.say("/show 1")[0].split("Comments:")[1]
    assert "sue (" in thread and "You (" in thread
    # 4. Unshare; the supervisor sees nothing.
    assert ana.say("/unshare 1") == ["Entry #1 is no longer shared with anyone."]
    assert sue.say("/review") == ["Nothing is shared with you at the moment."]
    stale = sue.loop.run_until_complete(app.engine.handle(Event(user=sue.user, choice=read_button.data)))
    assert [r.text for r in stale] == ["That entry isn't shared with you (or no longer is)."]
    assert "Priya" not in texts_of(sue)
