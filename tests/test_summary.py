"""Summaries faithful by construction: built from the person's own whole sentences, checked word by word."""

from __future__ import annotations

from bot.engine.ports import Generation
from bot.engine.wording import unsupported
from conftest import Chat, FixedClock

ANSWERS = [
    ("meeting", "Discharge planning with the ward manager and the council brokerage lead."),
    ("wants", "The ward wanted people out the same day; the council wanted two weeks' notice."),
    ("engagement", "Persuading"),
    ("level", "Tactical"),
    ("power", "Formally the chair ran it, but the finance lead shaped every decision without saying much."),
    ("story", "People say the hospital dumps its problems on the community and nobody listens to carers."),
    ("knock_on", "If discharges speed up, reablement will be swamped by Friday."),
    ("stance", "Critical friend"),
    ("next_step", "Call the brokerage lead on Tuesday about the backlog."),
]
FOLLOWUP = {"power": "She holds the winter money, and I think I deferred to her too quickly."}


def _reflect(chat: Chat) -> str:
    chat.say("/reflect")
    for step_id, answer in ANSWERS:
        chat.say(answer)
        state = chat.app.journal.load_state(chat.user)["reflect"]
        if state["phase"] == "followup":
            chat.say(FOLLOWUP.get(step_id, "/skip"))
    state = chat.app.journal.load_state(chat.user)["reflect"]
    assert state["phase"] == "review"
    return state["summary"]


def _written(chat: Chat) -> str:
    return "\n".join([a for _, a in ANSWERS] + list(FOLLOWUP.values()))


def test_the_summary_uses_only_the_persons_words_whole_and_covers_each_part(chat):
    summary = _reflect(chat)
    titles = {w for s in chat.app.prompts.protocols["after_meeting"].steps for w in s.title.split()}
    titles |= set(chat.app.engine.ctx.say("summary_own_part").split())
    assert unsupported(summary, _written(chat), allowed=titles) == []
    for line in summary.splitlines():
        assert line.rstrip()[-1] in ".!?", "every line ends a sentence: nothing cut mid-word"
    for _, answer in ANSWERS:
        assert answer.split(";")[0].split(",")[0].rstrip(".") in summary, "each answered step is there"
    assert "She holds the winter money" in summary, "the follow-up answer is read too"
    assert "deferred to her too quickly" in summary, "what they said about their own part is kept"


def test_a_long_first_sentence_gives_whole_clauses_never_a_cut_word(chat):
    chat.say("/reflect")
    long = ("It was the quarterly integrated discharge board with the acute trust, two community providers, "
            "the council's brokerage team, a housing officer, the hospice and a GP, and we went round the same "
            "three problems for two hours, which I found exhausting, though by the end there was a plan.")
    chat.say(long)
    chat.skip_to_review()
    summary = chat.app.journal.load_state(chat.user)["reflect"]["summary"]
    body = summary.split(": ", 1)[1]
    for piece in body.rstrip(".").split("; "):
        assert piece in long, "every piece is a whole clause of theirs"


class ScriptedModel:
    def __init__(self, text):
        self.text = text

    @property
    def available(self):
        return True

    async def generate(self, user, task, variables, on_partial=None):
        return Generation(self.text if task == "summary" else "", "ok")


def _model_summary_app(make_app, make_config, text):
    config = make_config(**{"reflection.summary_strategy": "model"})
    return make_app(config, clock=FixedClock(), generator=ScriptedModel(text))


def test_a_summary_containing_a_word_the_person_never_wrote_is_replaced_by_the_built_summary(make_app, make_config):
    invented = ("Discharge planning where the ward wanted people out the same day. The finance lead shaped every "
                "decision, which shows the trust board is failing.")
    chat = Chat(_model_summary_app(make_app, make_config, invented))
    summary = _reflect(chat)
    assert summary != invented and "board" not in summary
    assert chat.app.journal.load_state(chat.user)["reflect"]["summary_generated"] is False


def test_a_faithful_rephrasing_by_the_model_is_kept(make_app, make_config):
    faithful = ("Discharge planning where the ward wanted people out the same day and the council wanted notice. "
                "The finance lead shaped every decision.")
    chat = Chat(_model_summary_app(make_app, make_config, faithful))
    summary = _reflect(chat)
    assert summary == faithful
    assert chat.replies[-1].generated is True
