"""Literature that fits: matched on the person's own words at the steps a card speaks to, at most one
per reflection, not the same card twice in a row, and silence when nothing fits."""

from __future__ import annotations

from conftest import Chat

STORY = "People say the hospital dumps its problems on the community; the line in the corridor is 'here we go again'."
POWER = "The finance director holds the purse strings, so everyone deferred to her."


def _reflect(chat: Chat, answers: dict) -> list[str]:
    texts = chat.say("/reflect")
    for step in chat.app.prompts.protocols["after_meeting"].steps:
        texts += chat.say(answers.get(step.id, "/skip"))
        if chat.app.journal.load_state(chat.user)["reflect"]["phase"] == "followup":
            texts += chat.say("/skip")
    texts += chat.say("save")
    return texts


def _ideas(texts: list[str]) -> list[str]:
    return [t for t in texts if "From: " in t]


def test_button_labels_alone_never_fetch_an_idea_or_card_themes(chat):
    texts = _reflect(chat, {"engagement": "Bargaining", "level": "Tactical", "stance": "Regulator"})
    assert _ideas(texts) == []
    entry = chat.app.journal.get_entry(chat.user, 1)
    assert set(entry.tags) <= {"bargaining", "tactical", "regulator"}


def test_an_idea_that_fits_is_offered_once_with_its_real_source_and_a_vague_reflection_gets_none(app):
    from bot.retrieval.cards import load_cards

    fits, vague = Chat(app, "fits"), Chat(app, "vague")
    ideas = _ideas(_reflect(fits, {"meeting": "Discharge board.", "power": POWER, "story": STORY}))
    assert len(ideas) == 1
    cards = {c.title: c for c in load_cards(app.config.paths.knowledge_dir)}
    title = next(t for t in cards if f"From: {t}, " in ideas[0])
    assert cards[title].citation in ideas[0] and cards[title].idea in ideas[0]
    assert _ideas(_reflect(vague, {"meeting": "Meeting.", "wants": "The usual.", "power": "Not sure.",
                                  "story": "Dunno really.", "knock_on": "Some, probably."})) == []


def test_the_same_card_is_not_offered_to_the_same_person_twice_in_a_row(chat):
    answers = {"meeting": "Discharge board.", "power": POWER, "story": STORY}
    first = _ideas(_reflect(chat, answers))
    second = _ideas(_reflect(chat, answers))
    assert first, "the first reflection gets an idea"
    assert not second or second[0] != first[0]
