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
    "What would help them agree on discharge times?",
])
def test_guard_accepts_open_curious_followups(guard, good):
    assert guard.check_followup(good, SOURCE).ok


def test_guard_takes_a_name_they_wrote_in_a_possessive_or_plural_and_roles_from_the_steps_own_question(guard):
    # Written: "Tariq", "GPs", "EHCPs"; a follow-up may say "Tariq's", "the GP", "each EHCP".
    source = "Tariq runs the drop-in. The GPs wanted two EHCPs signed off first."
    assert guard.check_followup("What does Tariq's drop-in need before the GP signs off?", source).ok
    assert guard.check_followup("What would each EHCP need to show for that?", source).ok
    assert guard.check_followup("What would the ICB make of Tariq's drop-in?", source).reason == "new name"
    stance = "How do you think they saw you: as a critical friend, or as a regulator? What gave you that sense?"
    assert guard.check_followup("What in the room made you feel more like the regulator today?", "Not sure",
                                stance).ok
    assert not guard.check_followup("What in the room made you feel more like the regulator today?",
                                    "Not sure").ok


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


def model_app(make_app, make_config, generator=None, **overrides):
    """An app whose follow-ups come from the model (the configurable strategy), not the curated default."""
    config = make_config(**{"reflection.followup_strategy": "model", **overrides})
    return make_app(config, clock=FixedClock(), **({"generator": generator} if generator else {}))


def is_curated_pick(text: str, step) -> bool:
    """One of the step's curated questions, or one of its frames around a quote of the person's words."""
    if text in step.fallbacks:
        return True
    for frame in step.frames:
        head, _, tail = frame.partition("{quote}")
        if text.startswith(head) and text.endswith(tail):
            return True
    return False


def _to_first_followup(c: Chat) -> list[str]:
    c.say("/reflect")
    c.say("Discharge meeting with the ward manager.")
    return c.say("The ward wanted speed; social care wanted notice.")


def test_a_judging_generation_is_replaced_by_a_curated_question(make_app, make_config):
    model = ScriptedModel(["Why did you fail to get the ward to agree? That was a mistake."])
    c = Chat(model_app(make_app, make_config, model))
    texts = _to_first_followup(c)
    assert is_curated_pick(texts[-1], c.app.prompts.protocols["after_meeting"].steps[1])
    assert "mistake" not in " ".join(texts)
    # Silently: no apology or notice about the replacement.
    assert len(texts) == 1


def test_a_good_generation_is_shown_as_plain_model_text(make_app, make_config):
    model = ScriptedModel(["What do you think social care most needs from the ward?"])
    c = Chat(model_app(make_app, make_config, model))
    _to_first_followup(c)
    last = c.replies[-1]
    assert last.text == "What do you think social care most needs from the ward?"
    assert last.generated is True


@pytest.mark.parametrize("failure", [dict(status="timeout"), dict(status="failed"), dict(raises=True)])
def test_model_failure_or_timeout_continues_the_flow_and_loses_nothing(make_app, make_config, failure):
    model = ScriptedModel(**failure)
    c = Chat(model_app(make_app, make_config, model))
    texts = _to_first_followup(c)
    assert any("isn't available" in t for t in texts), "the user is told once"
    assert is_curated_pick(texts[-1], c.app.prompts.protocols["after_meeting"].steps[1])
    texts = c.say("They both fear winter.")
    assert not any("isn't available" in t for t in texts), "said once, not every turn"
    c.skip_to_review()
    assert c.say("save")[0].startswith("Saved as entry #1")
    entry = c.app.journal.get_entry(c.user, 1)
    assert entry.answers[1].followup_answer == "They both fear winter."
    assert entry.summary  # the curated summary built from the user's own words


def test_missing_model_file_uses_curated_questions(make_app, make_config, tmp_path):
    app = model_app(make_app, make_config, **{"llm.model_path": str(tmp_path / "nowhere.gguf")})
    assert any("No model file" in n for n in app.notes)
    c = Chat(app)
    texts = _to_first_followup(c)
    assert any("isn't available" in t for t in texts)
    assert is_curated_pick(texts[-1], app.prompts.protocols["after_meeting"].steps[1])


def test_the_default_strategy_asks_no_model_and_shows_no_model_notice(make_app, make_config, tmp_path):
    app = make_app(make_config(**{"llm.model_path": str(tmp_path / "nowhere.gguf")}), clock=FixedClock())
    assert app.generator is None and not app.notes
    c = Chat(app)
    texts = _to_first_followup(c)
    assert not any("isn't available" in t for t in texts)
    assert is_curated_pick(texts[-1], app.prompts.protocols["after_meeting"].steps[1])


def test_real_model_timeout_is_reported_as_timeout_not_an_error(make_app, make_config):
    app = model_app(make_app, make_config, **{"llm.timeout_seconds": 0.001})
    result = asyncio.run(app.generator.generate("console:t", "followup",
                                                {"question": "Who was there?", "answer": "The whole team."}))
    assert result.status == "timeout" and result.text == ""
