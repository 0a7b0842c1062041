"""Reflections survive restarts and kill -9; a confirmed entry is never lost (promises 1 and 12)."""

from __future__ import annotations

import time

from conftest import Chat, FixedClock, LiveChat, write_config


def test_resume_after_killing_the_process_mid_reflection(tmp_path, data_dir, model_path):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    live = LiveChat(cfg)
    live.wait_for("Hello kim")
    live.send("/reflect")
    live.wait_for("(1/9)")
    live.send("Joint commissioning board with the ICB and two councils.")
    live.wait_for("(2/9)")
    live.send("The ICB wanted a single contract; the councils wanted to keep their own providers.")
    live.wait_for("[1] Skip  [2] Back", timeout=60)  # the follow-up question
    live.send("Both fear losing control of their budgets.")
    live.wait_for("(3/9)")
    live.kill9()

    again = LiveChat(cfg)
    out = again.wait_for("unfinished reflection")
    assert "question 3 of 9" in out
    again.send("/resume")
    again.wait_for("(3/9) How did you engage")
    again.send("Bargaining")
    for _ in range(40):  # skip everything else until the summary
        if b"Here is a short summary" in again.seen:
            break
        again.send("/skip")
        time.sleep(0.05)
    again.wait_for("Here is a short summary")
    again.send("save")
    again.wait_for("Saved as entry #1")
    again.proc.stdin.close()
    again.proc.wait(timeout=30)

    from storage.journal import SqlJournal
    journal = SqlJournal.open(data_dir)
    entry = journal.get_entry("console:kim", 1)
    answers = {a.step_id: a for a in entry.answers}
    assert answers["meeting"].answer.startswith("Joint commissioning board")
    assert answers["wants"].followup_answer == "Both fear losing control of their budgets."
    assert answers["engagement"].answer == "Bargaining"
    journal.close()


def test_confirmed_note_survives_kill_9(tmp_path, data_dir, model_path):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    live = LiveChat(cfg, user="lee")
    live.wait_for("Hello lee")
    live.send("Agreed with the hospice to pilot shared care plans.")
    live.wait_for("Saved as quick note #1")
    live.kill9()  # straight after the confirmation, no clean shutdown

    from storage.journal import SqlJournal
    journal = SqlJournal.open(data_dir)
    assert journal.get_entry("console:lee", 1).note == "Agreed with the hospice to pilot shared care plans."
    journal.close()


def test_reflection_state_survives_an_app_restart_in_process(make_app, make_config):
    clock = FixedClock()
    first = Chat(make_app(clock=clock), user="rae")
    first.say("/reflect")
    first.say("Neighbourhood team huddle.")
    first.app.close()
    second = Chat(make_app(clock=clock), user="rae")
    texts = second.say("/start")
    assert any("question 2 of 9" in t for t in texts)
    assert any("(2/9)" in t for t in second.say("/resume"))


def test_plain_message_after_a_long_pause_is_a_note_not_an_answer(make_app):
    clock = FixedClock()
    c = Chat(make_app(clock=clock), user="ola")
    c.say("/reflect")
    c.say("Safeguarding review.")
    clock.advance(hours=30)
    texts = c.say("Remember to book the room for Thursday.")
    assert any("quick note #1" in t and "/resume" in t for t in texts)
    state = c.app.journal.load_state(c.user)
    assert "wants" not in state["reflect"]["answers"]
    assert any("(2/9)" in t for t in c.say("/resume"))
