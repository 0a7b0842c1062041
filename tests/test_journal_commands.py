"""Quick notes, /journal, /show, /edit, /delete and /search, always over the user's own entries only."""

from __future__ import annotations

from conftest import Chat


def test_plain_message_is_saved_as_a_quick_note_and_says_so(chat):
    texts = chat.say("Met the carers' forum; they want a say in the discharge leaflet.")
    assert texts == ["Saved as quick note #1. (/reflect starts a guided reflection.)"]
    entry = chat.app.journal.get_entry(chat.user, 1)
    assert entry.kind == "note"
    assert entry.note == "Met the carers' forum; they want a say in the discharge leaflet."


def test_note_command_saves_even_during_a_reflection(chat):
    chat.say("/reflect")
    texts = chat.say("/note Call Priya about the rota")
    assert any("quick note #1" in t for t in texts)
    assert chat.app.journal.load_state(chat.user)["reflect"]["step"] == 0


def test_journal_lists_newest_first_and_show_prints_the_entry(chat):
    chat.say("First note about the estates meeting.")
    chat.say("Second note about the discharge hub.")
    listing = chat.say("/journal")[0]
    assert listing.index("#2") < listing.index("#1")
    assert "discharge hub" in listing
    shown = chat.say("/show 1")[0]
    assert "First note about the estates meeting." in shown


def test_edit_changes_the_chosen_field(chat):
    chat.say("Original wording of the note.")
    texts = chat.say("/edit 1")
    assert any("What would you like to change" in t for t in texts)
    chat.say("1")  # "The note"
    assert chat.say("Better wording of the note.") == ["Entry #1 is updated."]
    chat.say("/edit 1")
    chat.say("Tags")
    chat.say("estates, Quick win")
    entry = chat.app.journal.get_entry(chat.user, 1)
    assert entry.note == "Better wording of the note."
    assert entry.tags == ["estates", "quick win"]


def test_delete_asks_first_and_no_keeps_the_entry(chat):
    chat.say("A note to keep.")
    texts = chat.say("/delete 1")
    assert any("cannot be undone" in t for t in texts)
    assert chat.say("no") == ["Kept entry #1; nothing was deleted."]
    assert chat.app.journal.get_entry(chat.user, 1) is not None
    chat.say("/delete 1")
    assert chat.say("yes") == ["Entry #1 is deleted."]
    assert chat.app.journal.get_entry(chat.user, 1) is None
    # Numbers are never reused: the next entry is #2, so old references stay unambiguous.
    assert chat.say("Another note.") == ["Saved as quick note #2. (/reflect starts a guided reflection.)"]


def test_delete_prompt_followed_by_something_else_keeps_the_entry_and_the_message(chat):
    chat.say("Keep me.")
    chat.say("/delete 1")
    texts = chat.say("Actually, a thought about the rota.")
    assert "Kept entry #1" in texts[0] and "quick note #2" in texts[1]
    assert chat.app.journal.count_entries(chat.user) == 2


def test_entry_numbers_only_reach_the_users_own_entries(app):
    alex, blake = Chat(app, "alex"), Chat(app, "blake")
    alex.say("Alex's private note about the merger.")
    assert blake.say("/show 1") == ["You have no entry #1. /journal lists your entries."]
    assert "no entry #1" in blake.say("/delete 1")[0]
    assert "no entry #1" in blake.say("/edit 1")[0]
    # A forged button for someone else's entry gets a refusal, not the entry.
    blake.console._choices = ()
    from bot.engine.records import Event
    replies = blake.loop.run_until_complete(app.engine.handle(Event(user=blake.user, choice="del:yes:1")))
    assert "no entry #1" in replies[0].text
    assert alex.app.journal.get_entry(alex.user, 1) is not None


def test_search_finds_only_the_users_own_entries_by_keyword_and_meaning(app):
    alex, blake = Chat(app, "alex"), Chat(app, "blake")
    alex.say("The discharge hub keeps losing referrals over the weekend.")
    alex.say("Lunch with the estates manager about parking.")
    blake.say("The discharge hub rota is finally agreed.")
    keyword = alex.say("/search discharge")[0]
    assert "losing referrals" in keyword and "rota" not in keyword
    meaning = alex.say("/search patients going home from hospital are lost on Saturdays")[0]
    assert "losing referrals" in meaning and "rota" not in meaning
    assert "parking" not in meaning
    nothing = alex.say("/search zebra crossing budget")[0]
    assert nothing.startswith("Nothing in your journal matched")


def test_search_and_show_need_arguments(chat):
    assert "Tell me what to look for" in chat.say("/search")[0]
    assert "Please give an entry number" in chat.say("/show")[0]
    assert "Please give an entry number" in chat.say("/delete two")[0]
