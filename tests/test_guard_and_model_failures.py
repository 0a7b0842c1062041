"""Generated text passes the guard or is replaced by a curated line; a failing model never loses an entry."""

from __future__ import annotations

import asyncio

import pytest

from bot.engine.guard import Guard
from bot.engine.ports import Generation
from conftest import Chat, FixedClock

SOURCE = "The ward manager and Priya from social care disagreed about discharge times."


@pytest.fixture
def guard(app):
    return app.engine.ctx.guard


@pytest.mark.parametrize("bad, reason", [
    ("Why did you fail to stop the ward manager?", "judging"),
    ("What should have happened, and who was wrong?", "judging"),
    ("How would you rate your performance out of ten?", "judging"),
    ("What did Dr Okafor think about the plan?", "new name"),
    ("How does the NHS Trust Board see this?", "new name"),
    ("What ideas at https://example.org could help you?", "url"),
    ("What happened next? And who decided?", "not one question"),
    ("The meeting sounds difficult.", "not one question"),
    ("Did the ward manager agree?", "closed question"),
    ("What did each party want from the meeting, as far as you could tell?", "repeats a known question"),
    ("What " + "really " * 60 + "happened?", "length"),
])
def test_guard_rejects_bad_followups(guard, bad, reason):
    verdict = guard.check_followup(bad, SOURCE)
    assert not verdict.ok
    assert verdict.reason == reason


@pytest.mark.parametrize("good", [
    "What do you think Priya was most worried about?",
    "How might the ward manager describe the same meeting?",
    "What would help the two teams agree on discharge times?",
])
def test_guard_accepts_open_curious_followups(guard, good):
    assert guard.check_followup(good, SOURCE).ok


def test_guard_keeps_summaries_to_what_the_user_said(guard):
    assert guard.check_summary("The ward manager and Priya disagreed about discharge times.", SOURCE).ok
    assert not guard.check_summary("The Chief Executive of Northshire Council overruled the discharge plan.",
                                   SOURCE).ok
    assert not guard.check_summary("Budget cuts hurt morale across every hospital department nationally.",
                                   SOURCE).ok
    assert Guard.tidy_summary("One point. One point. A fragment with no end") == "One point."


class ScriptedModel:
    """A model stand-in the test controls: says exactly what it is told, or fails as told."""

    def __init__(self, outputs=(), status="ok", raises=False):
        self.outputs = list(outputs)
        self.status = status
        self.raises = raises
        self.prompts = []

    @property
    def available(self):
        return True

    async def generate(self, user, task, variables, on_partial=None):
        self.prompts.append((task, dict(variables)))
        if self.raises:
            raise RuntimeError("model crashed")
        if self.status != "ok":
            return Generation("", self.status)
        return Generation(self.outputs.pop(0) if self.outputs else "", "ok")


def _to_first_followup(c: Chat) -> list[str]:
    c.say("/reflect")
    c.say("Discharge meeting with the ward manager.")
    return c.say("The ward wanted speed; social care wanted notice.")


def test_a_judging_generation_is_replaced_by_a_curated_question(make_app):
    model = ScriptedModel(["Why did you fail to get the ward to agree? That was a mistake."])
    c = Chat(make_app(clock=FixedClock(), generator=model))
    texts = _to_first_followup(c)
    fallbacks = c.app.prompts.protocols["after_meeting"].steps[1].fallbacks
    assert texts[-1] in fallbacks
    assert "mistake" not in " ".join(texts)
    # Silently: no apology or notice about the replacement.
    assert len(texts) == 1


def test_a_good_generation_is_shown_as_plain_model_text(make_app):
    model = ScriptedModel(["What do you think social care most needs from the ward?"])
    c = Chat(make_app(clock=FixedClock(), generator=model))
    _to_first_followup(c)
    last = c.replies[-1]
    assert last.text == "What do you think social care most needs from the ward?"
    assert last.generated is True


@pytest.mark.parametrize("failure", [dict(status="timeout"), dict(status="failed"), dict(raises=True)])
def test_model_failure_or_timeout_continues_the_flow_and_loses_nothing(make_app, failure):
    model = ScriptedModel(**failure)
    c = Chat(make_app(clock=FixedClock(), generator=model))
    texts = _to_first_followup(c)
    assert any("isn't available" in t for t in texts), "the user is told once"
    assert texts[-1] in c.app.prompts.protocols["after_meeting"].steps[1].fallbacks
    texts = c.say("They both fear winter.")
    assert not any("isn't available" in t for t in texts), "said once, not every turn"
    c.skip_to_review()
    assert c.say("save")[0].startswith("Saved as entry #1")
    entry = c.app.journal.get_entry(c.user, 1)
    assert entry.answers[1].followup_answer == "They both fear winter."
    assert entry.summary  # the curated summary built from the user's own words


def test_missing_model_file_uses_curated_questions(make_app, make_config, tmp_path):
    config = make_config(**{"llm.model_path": str(tmp_path / "nowhere.gguf")})
    app = make_app(config, clock=FixedClock())
    assert any("No model file" in n for n in app.notes)
    c = Chat(app)
    texts = _to_first_followup(c)
    assert any("isn't available" in t for t in texts)
    assert texts[-1] in app.prompts.protocols["after_meeting"].steps[1].fallbacks


def test_real_model_timeout_is_reported_as_timeout_not_an_error(make_app, make_config):
    app = make_app(make_config(**{"llm.timeout_seconds": 0.001}), clock=FixedClock())
    result = asyncio.run(app.generator.generate("console:t", "followup",
                                                {"question": "Who was there?", "answer": "The whole team."}))
    assert result.status == "timeout" and result.text == ""
