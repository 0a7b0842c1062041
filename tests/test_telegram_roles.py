"""Roles, replies, comments and notices over Telegram: the real bot against the Bot API emulator."""

from __future__ import annotations

import re

from conftest import run_cli, write_config
from storage.people import People
from tg_helpers import share_whole_entry
from test_telegram import ALEX, BLAKE, emulator, live, tg_config  # noqa: F401  (fixtures)


def member(app, user_id: int, name: str, *roles: str) -> str:
    """Someone who joined by an invitation, holding these roles."""
    handle = f"telegram:{user_id}"
    people = People(app.journal)
    people.redeem(people.create_invite(roles[0]), handle, name)
    for role in roles[1:]:
        people.set_role(handle, role)
    return handle


def admin(tmp_path, app, *args: str):
    cfg = write_config(tmp_path / "admin.toml", app.config.data_dir, app.config.llm.model_path)
    done = run_cli(["admin", *args, "--config", str(cfg)])
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_the_menu_is_the_registry_and_roles_come_from_the_admin_or_a_second_invite(live, emulator, tmp_path):
    bot = live(members=())
    member(bot.app, ALEX, "Alex", "spanner")
    emulator.wait_for(lambda: emulator.commands, what="setMyCommands")
    assert [c["command"] for c in emulator.commands] == [name for name, _ in bot.app.engine.menu()]
    assert {c["command"] for c in emulator.commands} == set(bot.app.engine.registry.commands)
    emulator.send_text(ALEX, "/help")
    own = emulator.wait_text(ALEX, "Here is what you can do").text.split("Also")[0]
    assert "/reflect" in own and "/mentees" not in own
    assert "telegram:501 now holds: spanner, mentor" in admin(tmp_path, bot.app, "role", "501", "mentor")
    emulator.send_text(ALEX, "/help")
    emulator.wait_for(lambda: len([m for m in emulator.chat(ALEX) if "Here is what" in m.text]) == 2, what="help")
    own = [m for m in emulator.chat(ALEX) if "Here is what" in m.text][-1].text.split("Also")[0]
    assert "/mentees" in own
    code = People(bot.app.journal).create_invite("supervisor")
    emulator.send_text(ALEX, f"/start {code}")
    emulator.wait_text(ALEX, "you now hold the role supervisor")
    assert People(bot.app.journal).roles("telegram:501") == ("spanner", "mentor", "supervisor")


def test_a_mentors_note_and_the_mentees_answer_reach_each_other_on_telegram(live, emulator, tmp_path):
    bot = live(members=())
    member(bot.app, ALEX, "Alex", "spanner")
    member(bot.app, BLAKE, "Blake", "spanner", "mentor")
    assert "now also holds the role mentee" in admin(tmp_path, bot.app, "pair", "Blake", "501")
    emulator.wait_text(ALEX, "with Blake as your mentor")  # pushed, without Alex writing first
    emulator.send_text(BLAKE, "/note Alex How is the first week going?", name="Blake")
    emulator.wait_text(BLAKE, "Sent to Alex.")
    note = emulator.wait_text(ALEX, "A note from Blake, your mentor: How is the first week going?")
    assert [label for label, _ in note.buttons] == ["Reply"]
    emulator.press(ALEX, note.buttons[0][1], note.message_id)
    emulator.wait_text(ALEX, "Type your answer to Blake")
    emulator.send_text(ALEX, "Busy, and I mapped the discharge teams.")
    emulator.wait_text(ALEX, "Sent to Blake.")
    answer = emulator.wait_text(BLAKE, "A note from Alex, your mentee: Busy, and I mapped the discharge teams.")
    assert [label for label, _ in answer.buttons] == ["Reply"]
    emulator.send_text(BLAKE, "/reply Which team surprised you?", name="Blake")
    emulator.wait_text(ALEX, "A note from Blake, your mentor: Which team surprised you?")
    emulator.send_text(ALEX, "/reply The voluntary sector hub.")
    emulator.wait_text(BLAKE, "The voluntary sector hub.")
    assert bot.app.journal.count_entries("telegram:501") == 0  # no answer became a stray quick note


def test_sharing_and_a_comment_thread_with_a_supervisor_on_telegram(live, emulator, tmp_path):
    bot = live(members=())
    member(bot.app, ALEX, "Alex", "spanner")
    member(bot.app, BLAKE, "Blake", "supervisor")
    admin(tmp_path, bot.app, "supervise", "blake", "telegram:501")
    emulator.wait_text(ALEX, "Blake is now your supervisor.")
    emulator.wait_text(BLAKE, "You now supervise Alex.")
    emulator.send_text(ALEX, "Estates meeting: the parking budget again.")
    emulator.wait_text(ALEX, "Saved as quick note #1")
    share_whole_entry(emulator, ALEX, 1)
    told = emulator.wait_text(BLAKE, "Alex shared entry #1 with you (whole entry).")
    emulator.press(BLAKE, told.buttons[0][1], told.message_id, name="Blake")
    shown = emulator.wait_text(BLAKE, "the parking budget again")
    emulator.press(BLAKE, shown.buttons[0][1], shown.message_id, name="Blake")
    emulator.wait_text(BLAKE, "Type your answer to Alex")
    emulator.send_text(BLAKE, "Who holds that budget?", name="Blake")
    comment = emulator.wait_text(ALEX, "Blake, your supervisor, commented on entry #1: Who holds that budget?")
    assert [label for label, _ in comment.buttons] == ["Answer"]
    emulator.send_text(ALEX, "/reply 1 The estates director.")
    emulator.wait_text(BLAKE, "Alex answered on entry #1: The estates director.")
    emulator.send_text(ALEX, "/show 1")
    thread = emulator.wait_text(ALEX, "Comments:").text.split("Comments:")[1]
    assert re.search(r"Blake \(.*\): Who holds that budget\?", thread)
    assert re.search(r"You \(.*\): The estates director\.", thread)
    emulator.send_text(ALEX, "/privacy")
    assert "#1 with Blake (supervisor), whole entry" in emulator.wait_text(ALEX, "Who can see it").text
    assert bot.app.journal.count_entries("telegram:501") == 1
