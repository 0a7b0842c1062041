"""The guided reflection: a spanner reflects on a meeting end to end and the entry keeps every answer."""

from __future__ import annotations

from conftest import Chat, run_cli, write_config

ANSWERS = {
    "meeting": "Discharge planning with the ward manager, two social workers and the council lead.",
    "wants": "The ward wanted faster discharges; the council wanted more notice before each discharge.",
    "engagement": "Persuading, because nobody there reports to me.",
    "level": "Tactical",
    "power": "The bed manager had the real power, though the chair ran the agenda.",
    "story": "People say the hospital pushes its problems onto community teams; carers were not heard.",
    "knock_on": "If discharges speed up, the reablement team will be swamped by Friday.",
    "stance": "Critical friend",
    "next_step": "Call the bed manager tomorrow about a joint huddle.",
}
FOLLOWUP_ANSWERS = {
    "wants": "Underneath it both sides fear a winter crisis.",
    "engagement": "It opened the door but closed off a firm commitment.",
    "power": "Control of the bed list gives her the influence.",
    "story": "I could ask the carers' forum directly.",
    "knock_on": "Reablement would feel it first.",
}


def in_followup(chat: Chat) -> bool:
    reflect = chat.app.journal.load_state(chat.user).get("reflect") or {}
    return reflect.get("phase") == "followup"


def run_full_reflection(chat: Chat) -> list[str]:
    """Answer every step; answer each follow-up (or skip it); accept the summary. Returns all reply texts."""
    texts = chat.say("/reflect")
    proto = chat.app.prompts.protocols["after_meeting"]
    for step in proto.steps:
        assert any(step.question in t for t in texts), f"step {step.id} was not asked"
        texts = chat.say(ANSWERS[step.id])
        if in_followup(chat):
            question = [r for r in chat.replies[-len(texts):] if r.text.endswith("?")][-1]
            assert question.text.strip().endswith("?")
            texts = chat.say(FOLLOWUP_ANSWERS.get(step.id, "/skip"))
    assert any("summary" in t.lower() for t in texts), "no summary proposed at the end"
    return chat.say("save")


def test_scripted_reflection_saves_every_answer(chat):
    done = run_full_reflection(chat)
    assert any("Saved as entry #1" in t for t in done)
    entry = chat.app.journal.get_entry(chat.user, 1)
    assert entry.kind == "reflection"
    saved = {a.step_id: a for a in entry.answers}
    for step_id, answer in ANSWERS.items():
        assert saved[step_id].answer == answer
    for step_id, answer in FOLLOWUP_ANSWERS.items():
        assert saved[step_id].followup_answer == answer
        assert saved[step_id].followup_question.endswith("?")
    assert entry.summary.strip()
    assert "tactical" in entry.tags and "critical friend" in entry.tags
    assert entry.created_at.tzinfo is not None


def test_followups_are_open_questions_that_pass_the_guard(chat):
    run_full_reflection(chat)
    entry = chat.app.journal.get_entry(chat.user, 1)
    source = "\n".join(a.answer + "\n" + a.followup_answer for a in entry.answers)
    for a in entry.answers:
        if a.followup_question:
            assert chat.app.engine.ctx.guard.check_followup(a.followup_question, source).ok or \
                a.followup_question in chat.app.prompts.protocols["after_meeting"].steps[
                    chat.app.prompts.protocols["after_meeting"].index_of(a.step_id)].fallbacks


def test_literature_idea_is_offered_once_with_its_source_after_own_reading(chat):
    texts = []
    texts += chat.say("/reflect")
    proto = chat.app.prompts.protocols["after_meeting"]
    before_reading = []
    for step in proto.steps:
        got = chat.say(ANSWERS[step.id])
        if in_followup(chat):
            got += chat.say("/skip")
        texts += got
        if not step.own_reading and not any(s.own_reading for s in proto.steps[:proto.index_of(step.id)]):
            before_reading += got
    ideas = [t for t in texts if "From: " in t]
    assert not [t for t in before_reading if "From: " in t], "idea offered before the user's own reading"
    assert len(ideas) == 1
    from bot.retrieval.cards import load_cards
    cards = {c.title: c for c in load_cards(chat.app.config.paths.knowledge_dir)}
    source_line = ideas[0].split("From: ", 1)[1]
    title = next(t for t in cards if source_line.startswith(t))
    assert cards[title].citation in source_line
    assert cards[title].idea in ideas[0]


def test_skip_back_and_cancel(chat):
    chat.say("/reflect")
    chat.say(ANSWERS["meeting"])
    texts = chat.say("/skip")  # skip "wants" entirely
    assert any("(3/9)" in t for t in texts)
    texts = chat.say("/back")
    assert any("(2/9)" in t for t in texts)
    texts = chat.say("/back")
    assert any("(1/9)" in t and "Your answer before" in t for t in texts)
    assert chat.say("/cancel")[0].startswith("Drop the reflection you started")  # it holds an answer: ask
    texts = chat.say("Yes, drop it")
    assert any("not saved" in t for t in texts)
    assert chat.app.journal.count_entries(chat.user) == 0
    assert any("no unfinished reflection" in t for t in chat.say("/resume"))


def test_buttons_answer_choice_steps(chat):
    chat.say("/reflect")
    for key in ("meeting", "wants"):
        chat.say(ANSWERS[key])
    chat.say("/skip")  # the follow-up on wants
    assert chat.console._choices[0].label == "Bargaining"
    chat.say("1")  # press "Bargaining"
    state = chat.app.journal.load_state(chat.user)
    assert state["reflect"]["answers"]["engagement"]["answer"] == "Bargaining"


def test_edit_summary_and_tags_before_saving(chat):
    chat.say("/reflect")
    chat.skip_to_review()
    chat.say("tags: discharge, Winter pressures")
    chat.say("Busy meeting; the real decisions sit with the bed manager.")
    chat.say("save")
    entry = chat.app.journal.get_entry(chat.user, 1)
    assert entry.summary == "Busy meeting; the real decisions sit with the bed manager."
    assert entry.tags == ["discharge", "winter pressures"]


def test_reflection_through_the_real_console_command(tmp_path, data_dir, model_path):
    from bot.config import ROOT
    from bot.engine.prompt_data import load_prompt_data

    cfg = write_config(tmp_path / "spanner.toml", data_dir, model_path)
    proto = load_prompt_data(ROOT / "prompts").protocols["after_meeting"]
    script = ["/reflect"]
    for step in proto.steps:
        script.append(ANSWERS[step.id])
        if step.followup or ANSWERS[step.id] in step.choices:
            script.append("/skip")  # pass the follow-up question (typed answers, and a choice made)
    script += ["save", "/journal", "/show 1"]
    result = run_cli(["chat", "--config", str(cfg), "--user", "sam"], "\n".join(script).encode() + b"\n")
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "Saved as entry #1" in out
    assert "#1 ·" in out and "Reflection" in out
    for answer in ANSWERS.values():
        assert answer in out  # /show 1 prints every answer back
