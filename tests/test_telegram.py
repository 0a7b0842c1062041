"""Spanner on Telegram: the real python-telegram-bot Application against a Bot API emulator on loopback."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import timedelta

import pytest

from bot.adapters.telegram.flood import retry_after_seconds
from bot.adapters.telegram.formatting import split_text, strip_urls
from bot.engine.records import Entry
from conftest import ROOT, SPANNER, Chat, FixedClock
from storage.models import InboxUpdate, User
from storage.people import People
from telegram_emulator import TelegramEmulator
from tg_helpers import LiveBot, share_whole_entry

ALEX, BLAKE, CASEY, STRANGER = 501, 502, 503, 999


@pytest.fixture
def emulator():
    emu = TelegramEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def tg_config(make_config, emulator):
    def make(**overrides):
        values = {"telegram.base_url": emulator.base_url, "telegram.poll_timeout": 1,
                  "telegram.per_chat_per_second": 30.0, "telegram.per_chat_burst": 10}
        values.update(overrides)
        return make_config(**values)
    return make


@pytest.fixture
def live(make_app, tg_config, emulator):
    bots = []

    def start(config=None, members=(ALEX,), **app_kwargs):
        app = make_app(config or tg_config(), **app_kwargs)
        for member in members:
            _make_member(app, member)
        bot = LiveBot(app, emulator).start()
        bots.append(bot)
        return bot
    yield start
    for bot in bots:
        bot.stop()


def _wait_for_followup(emulator, chat_id: int):
    """The follow-up question after the answer to step 2: the last message, a question, not step 2 itself."""
    def latest():
        msgs = emulator.chat(chat_id)
        return msgs[-1] if msgs and msgs[-1].text.endswith("?") and "(2/9)" not in msgs[-1].text else None
    return emulator.wait_for(latest, what="a follow-up question")


def _make_member(app, user_id: int, role: str = "spanner") -> None:
    people = People(app.journal)
    name = {ALEX: "Alex", BLAKE: "Blake", CASEY: "Casey"}.get(user_id, "Alex")
    people.redeem(people.create_invite(role), f"telegram:{user_id}", name)


def _entries(app, user_id):
    return app.journal.list_entries(f"telegram:{user_id}", 100)


def test_invite_link_onboards_a_person_and_asks_their_time_zone(live, emulator):
    bot = live(members=())
    code = People(bot.app.journal).create_invite("mentee")
    emulator.send_text(BLAKE, f"/start {code}", name="Blake")
    hello = emulator.wait_text(BLAKE, "Welcome, Blake")
    assert "encrypted" in hello.text
    question = emulator.wait_text(BLAKE, "Which time zone")
    assert ("Europe/London", "tz:Europe/London") in question.buttons
    emulator.press(BLAKE, "tz:Europe/London", question.message_id, name="Blake")
    emulator.wait_text(BLAKE, "Your time zone is now Europe/London")
    people = {p.handle: p for p in People(bot.app.journal).list()}
    assert people["telegram:502"].roles == ("mentee",)
    # The link is single use: someone else gets a refusal and is not stored.
    emulator.send_text(CASEY, f"/start {code}", name="Casey")
    emulator.wait_text(CASEY, "already been used or has expired")
    assert "telegram:503" not in {p.handle for p in People(bot.app.journal).list()}


def test_command_menu_is_registered_at_start_up(live, emulator):
    live()
    emulator.wait_for(lambda: emulator.commands, what="setMyCommands")
    assert {"reflect", "journal", "help", "privacy"} <= {c["command"] for c in emulator.commands}


def test_a_rejected_command_menu_only_warns(live, emulator, caplog):
    emulator.reject_methods.add("setMyCommands")
    live()
    emulator.send_text(ALEX, "/help")
    emulator.wait_text(ALEX, "Here is what you can do")


def test_stranger_gets_one_fixed_reply_and_nothing_is_stored(live, emulator):
    bot = live()
    emulator.send_text(STRANGER, "Here is my confidential story about the ward.", name="Eve")
    emulator.wait_text(STRANGER, "need an invitation link")
    time.sleep(0.5)
    assert len(emulator.chat(STRANGER)) == 1
    with bot.app.journal.sessions() as s:
        assert s.query(User).filter_by(handle="telegram:999").count() == 0
        assert s.query(InboxUpdate).count() == 0


def test_group_chats_are_left_politely(live, emulator):
    live()
    emulator.send_text(ALEX, "/reflect", chat_type="group")
    emulator.wait_for(lambda: emulator.left_chats, what="leaveChat")
    group_id = emulator.left_chats[0]
    assert "private one-to-one chats" in emulator.texts(group_id)[0]


def test_full_reflection_by_buttons_and_text(live, emulator):
    bot = live()
    emulator.send_text(ALEX, "/reflect")
    first = emulator.wait_text(ALEX, "(1/9)")
    assert ("Skip", "r:skip") in first.buttons
    emulator.send_text(ALEX, "Discharge huddle with the ward and the council.")
    emulator.wait_text(ALEX, "(2/9)")
    emulator.send_text(ALEX, "The ward wanted speed; the council wanted notice.")
    followup = _wait_for_followup(emulator, ALEX)
    assert not followup.text.endswith(" …")  # the streamed draft became the final text
    emulator.press(ALEX, "r:skip", followup.message_id)
    engage = emulator.wait_text(ALEX, "(3/9)")
    assert ("Persuading", "r:opt:1") in engage.buttons
    emulator.press(ALEX, "r:opt:1", engage.message_id)
    for _ in range(40):
        last = emulator.chat(ALEX)[-1]
        if "Here is a short summary" in last.text:
            break
        before = len(emulator.chat(ALEX))
        emulator.press(ALEX, "r:skip", last.message_id)
        emulator.wait_for(lambda: len(emulator.chat(ALEX)) > before or
                          "Here is a short summary" in emulator.chat(ALEX)[-1].text, what="next step")
    summary = emulator.wait_text(ALEX, "Here is a short summary")
    assert ("Save", "r:save") in summary.buttons
    emulator.press(ALEX, "r:save", summary.message_id)
    emulator.wait_text(ALEX, "Saved as entry #1")
    (entry,) = _entries(bot.app, ALEX)
    answers = {a.step_id: a for a in entry.answers}
    assert answers["meeting"].answer == "Discharge huddle with the ward and the council."
    assert answers["engagement"].answer == "Persuading"
    for message in emulator.chat(ALEX):
        assert message.parse_mode is None and message.link_preview_disabled


def test_redelivered_update_creates_no_duplicate_entry_or_reply(live, emulator):
    bot = live()
    update_id = emulator.send_text(ALEX, "Agreed a joint visit with the housing team.")
    emulator.wait_text(ALEX, "Saved as quick note #1")
    emulator.redeliver(update_id)
    emulator.send_text(ALEX, "/journal")
    emulator.wait_text(ALEX, "Your recent entries")
    assert len(_entries(bot.app, ALEX)) == 1
    assert sum("Saved as quick note" in t for t in emulator.texts(ALEX)) == 1


def test_engine_answers_a_replayed_event_with_its_first_replies(app):
    """Crash after the engine committed but before the inbox was marked: the same replies, no new entry."""
    from bot.engine.records import Event
    chat = Chat(app, "rep")
    first = chat.loop.run_until_complete(app.engine.handle(Event(user="console:rep", text="A note.", id=77)))
    again = chat.loop.run_until_complete(app.engine.handle(Event(user="console:rep", text="A note.", id=77)))
    assert [r.text for r in again] == [r.text for r in first]
    assert app.journal.count_entries("console:rep") == 1


def test_kill_9_between_fetch_and_handling_then_restart_handles_exactly_once(tmp_path, data_dir, model_path,
                                                                            emulator):
    cfg = tmp_path / "tg.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{data_dir}"\n[llm]\nmodel_path = "{model_path}"\nthreads = 2\n'
                   f'[telegram]\nbase_url = "{emulator.base_url}"\npoll_timeout = 1\n')
    from storage.journal import SqlJournal
    journal = SqlJournal.open(data_dir)
    _make_member(type("A", (), {"journal": journal})(), ALEX)
    journal.close()
    env = {**os.environ, "SPANNER_TELEGRAM_TOKEN": emulator.token}
    emulator.hold_method("sendChatAction")  # handling starts with the typing indicator: freeze there
    proc = subprocess.Popen([SPANNER, "telegram", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        update_id = emulator.send_text(ALEX, "Note written just before the crash.")
        emulator.wait_for(lambda: emulator.method_calls("sendChatAction"), 60, "handling to begin")
        emulator.wait_for(lambda: emulator.confirmed_offset > update_id, 30, "the update to be acknowledged")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not emulator.texts(ALEX), "nothing was answered before the crash"
    emulator.release_method("sendChatAction")
    again = subprocess.Popen([SPANNER, "telegram", "--config", str(cfg)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        emulator.wait_text(ALEX, "Saved as quick note #1", timeout=60)
        time.sleep(1.5)
        assert sum("Saved as quick note" in t for t in emulator.texts(ALEX)) == 1
    finally:
        again.send_signal(signal.SIGTERM)
        err = again.communicate(timeout=30)[1].decode()
    assert emulator.token not in err  # the token is never printed
    journal = SqlJournal.open(data_dir)
    assert [e.note for e in journal.list_entries("telegram:501", 10)] == ["Note written just before the crash."]
    journal.close()


def test_429_is_waited_out_and_the_reply_still_arrives(live, emulator):
    live()
    emulator.fail("sendMessage", 429, retry_after=2)
    emulator.send_text(ALEX, "A note while Telegram is busy.")
    emulator.wait_text(ALEX, "Saved as quick note #1", timeout=30)
    calls = emulator.method_calls("sendMessage")
    assert calls[-1][0] - calls[0][0] >= 1.9  # waited retry_after before trying again


def test_retry_after_accepts_seconds_and_timedelta():
    assert retry_after_seconds(3) == 3.0
    assert retry_after_seconds(timedelta(seconds=2.5)) == 2.5


def test_sustained_sending_stays_within_one_message_per_second_per_chat(live, emulator, tg_config):
    live(tg_config(**{"telegram.per_chat_per_second": 1.0, "telegram.per_chat_burst": 2}))
    for i in range(6):
        emulator.send_text(ALEX, f"Quick note number {i}.")
    emulator.wait_for(lambda: sum("Saved as quick note" in t for t in emulator.texts(ALEX)) == 6, 30, "6 replies")
    times = sorted(m.at for m in emulator.chat(ALEX))
    # After the burst of 2, the rest are at least ~1 s apart.
    assert times[-1] - times[0] >= 3.5


def _slow_model_config(tg_config, tmp_path, max_tokens: int):
    """Real model, but follow-ups that run long (no stop strings): keeps the model busy for seconds."""
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    template = prompts / "templates" / "followup.toml"
    template.write_text(template.read_text().replace('stop = ["\\n", "Note:", "Answer:"]', "stop = []"))
    return tg_config(**{"paths.prompts_dir": str(prompts), "llm.max_tokens": max_tokens,
                        "llm.timeout_seconds": 240, "reflection.followup_strategy": "model"})


def test_other_users_are_answered_at_once_while_the_model_is_busy(live, emulator, tg_config, tmp_path):
    config = _slow_model_config(tg_config, tmp_path, 320)
    bot = live(config, members=(ALEX, BLAKE, CASEY))
    for user in (ALEX, CASEY):
        emulator.send_text(user, "/reflect")
        emulator.send_text(user, "Board meeting.")
        emulator.wait_text(user, "(2/9)")
    actions = len(emulator.method_calls("sendChatAction"))
    emulator.send_text(ALEX, "The board wanted savings and the clinicians wanted safety.")
    emulator.wait_for(lambda: len(emulator.method_calls("sendChatAction")) > actions, what="Alex's turn to start")
    time.sleep(0.5)
    emulator.send_text(CASEY, "Everyone wanted the budget to balance.")
    started = time.monotonic()
    emulator.send_text(BLAKE, "/journal")
    emulator.wait_text(BLAKE, "Your journal is empty")
    assert time.monotonic() - started < 2.0, "a non-model command waited for the model"
    assert bot.app.generator.stats.completed == 0, "the model was not busy after all"
    emulator.wait_for(lambda: len(emulator.chat(CASEY)) >= 3, 90, "Casey's turn")


def test_a_user_waiting_behind_others_is_told_so(live, emulator, tg_config, tmp_path):
    config = _slow_model_config(tg_config, tmp_path, 200)
    users = (ALEX, BLAKE, CASEY)
    live(config, members=users)
    for user in users:
        emulator.send_text(user, "/reflect")
        emulator.send_text(user, "Board meeting.")
        emulator.wait_text(user, "(2/9)")
    for user in users:
        emulator.send_text(user, "Each wanted something different from the budget.")
        time.sleep(0.3)
    emulator.wait_text(CASEY, "ahead of you", timeout=30)


def test_a_ten_thousand_character_reply_is_split_at_paragraphs(live, emulator):
    bot = live()
    paragraphs = [f"Paragraph {i}: " + ("the discharge hub needs a shared rota. " * 9).strip() for i in range(28)]
    long_note = "\n\n".join(paragraphs)
    assert len(long_note) > 10_000
    bot.app.journal.add_entry("telegram:501", Entry(kind="note", note=long_note), None)
    emulator.send_text(ALEX, "/show 1")
    emulator.wait_for(lambda: len(emulator.chat(ALEX)) >= 3, what="three parts")
    time.sleep(0.5)
    parts = emulator.texts(ALEX)
    assert all(len(p) <= 4096 for p in parts)
    assert all(p.rstrip().endswith(".") for p in parts[:-1]), "a part ended mid-paragraph"
    assert "\n\n".join(parts).count("Paragraph") == 28


def test_split_text_and_url_stripping():
    text = "a" * 5000
    assert [len(p) for p in split_text(text)] == [4096, 904]
    assert split_text("short") == ["short"]
    assert strip_urls("What do you think of https://evil.example/x?") == "What do you think of [link removed]"


@pytest.mark.parametrize("kind, expected, saved", [
    ("sticker", "only keep words", None),
    ("voice", "couldn't fetch that recording", None),  # a file id Telegram no longer has: asked to resend
    ("document", "can't read files", None),
    ("photo", "can't keep photos", "Whiteboard from the huddle"),
    ("forwarded", None, "(forwarded) Minutes: agreed the pilot"),
])
def test_non_text_messages_get_a_sensible_reply(live, emulator, kind, expected, saved):
    bot = live()
    caption = {"photo": "Whiteboard from the huddle", "forwarded": "Minutes: agreed the pilot"}.get(kind)
    emulator.send_other(ALEX, kind, caption=caption)
    if expected:
        emulator.wait_text(ALEX, expected)
    if saved:
        emulator.wait_text(ALEX, "Saved as quick note #1")
        assert _entries(bot.app, ALEX)[0].note == saved
    else:
        time.sleep(0.5)
        assert _entries(bot.app, ALEX) == []


def test_edits_unknown_commands_and_huge_messages(live, emulator):
    bot = live()
    emulator.send_text(ALEX, "/frobnicate")
    emulator.wait_text(ALEX, "I don't know the command /frobnicate")
    emulator.edit_text(ALEX, 1, "changed my mind")
    emulator.wait_text(ALEX, "I keep messages as you first sent them")
    huge = ("A long account of the meeting. " * 140)[:4096]
    emulator.send_text(ALEX, huge)
    emulator.wait_text(ALEX, "Saved as quick note #1")
    assert _entries(bot.app, ALEX)[0].note == huge.strip()


def test_message_text_never_reaches_the_logs(live, emulator, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    live()
    emulator.send_text(ALEX, "SECRET-WALRUS-9 said the merger is off.")
    emulator.wait_text(ALEX, "Saved as quick note #1")
    emulator.send_text(ALEX, "/show 1")
    emulator.wait_text(ALEX, "SECRET-WALRUS-9")
    assert "SECRET-WALRUS-9" not in caplog.text
    assert emulator.token not in caplog.text


TRANSCRIPT = [("text", "/help"), ("text", "First note about the estates review."), ("text", "/reflect"),
              ("text", "Estates review with the trust and the council."),
              ("text", "The council wanted the clinic moved; the trust wanted to keep it where it is."),
              ("text", "/skip"), ("press", "Bargaining"), ("text", "/skip"), ("press", "Tactical"), ("text", "/back"),
              ("text", "Honestly I keep thinking nobody would notice if I just disappeared."),
              ("press", "Carry on"), ("text", "I cried in the car park afterwards."), ("press", "Pause here"),
              ("text", "/cancel"), ("press", "Yes, drop it"), ("text", "/journal"), ("text", "/show 1"),
              ("text", "/search estates"),
              ("text", "/delete 1"), ("press", "No, keep it"), ("text", "/frobnicate")]


def test_the_same_transcript_gives_the_same_replies_on_console_and_telegram(make_app, tg_config, emulator):
    config = tg_config(**{"llm.temperature": 0.0, "llm.summary_temperature": 0.0})
    clock = FixedClock()
    console_app = make_app(config, clock=clock)
    chat = Chat(console_app, "501")
    console = []
    for action, value in TRANSCRIPT:
        if action == "press":
            data = next(c.data for c in chat.console._choices if c.label == value)
            replies = chat.loop.run_until_complete(console_app.engine.handle(
                __import__("bot.engine.records", fromlist=["Event"]).Event(user=chat.user, choice=data)))
            chat.console._choices = replies[-1].choices if replies else ()
        else:
            before = len(chat.replies)
            chat.say(value)
            replies = chat.replies[before:]
        console += [(r.text, [c.label for c in r.choices]) for r in replies]
    chat.close()
    console_app.close()

    tg_dir = config.data_dir.parent / "tg-data"
    shutil.copytree(config.data_dir / "chroma", tg_dir / "chroma")
    tg_app = make_app(tg_config(**{"llm.temperature": 0.0, "llm.summary_temperature": 0.0,
                                   "paths.data_dir": str(tg_dir)}), clock=clock)
    _make_member(tg_app, ALEX)
    bot = LiveBot(tg_app, emulator).start()
    try:
        for action, value in TRANSCRIPT:
            before = len(emulator.chat(ALEX))
            if action == "press":
                last = next(m for m in reversed(emulator.chat(ALEX)) if m.buttons)
                emulator.press(ALEX, dict(last.buttons)[value], last.message_id)
            else:
                emulator.send_text(ALEX, value)
            emulator.wait_for(lambda: len(emulator.chat(ALEX)) > before, what=f"reply to {value}")
            time.sleep(0.3)
        telegram = [(m.text, [label for label, _ in m.buttons]) for m in emulator.chat(ALEX)]
    finally:
        bot.stop()
    # An entry's time is when the database saved it (the real clock, not the test's): the two runs may
    # fall in different minutes, so the listing's times are compared as HH:MM.
    def timeless(replies):
        return [(re.sub(r"\b\d{2}:\d{2}\b", "HH:MM", text), labels) for text, labels in replies]

    assert timeless(telegram) == timeless(console)
    texts = [text for text, _ in telegram]
    assert any("116 123" in t and "SHOUT" in t for t in texts), "risk is answered with signposting on both"
    assert any("occupational health" in t for t in texts), "distress is acknowledged with support on both"
    assert any(t.startswith(("You wrote ‘", "You mentioned ‘", "You noted ‘", "In your words, ‘")) for t in texts)


def test_messages_sent_while_the_bot_was_down_are_handled_after_restart(live, emulator, make_app, tg_config):
    app = make_app(tg_config())
    _make_member(app, ALEX)
    emulator.send_text(ALEX, "Written while the bot was down.")
    time.sleep(0.3)
    bot = LiveBot(app, emulator).start()
    try:
        emulator.wait_text(ALEX, "Saved as quick note #1")
    finally:
        bot.stop()


def test_webhook_checks_the_secret_and_stores_before_answering(make_app, tg_config, emulator):
    import asyncio

    import aiohttp
    from aiohttp import web

    from bot.adapters.telegram.serve import SECRET_HEADER, make_bot, webhook_app

    app = make_app(tg_config())
    _make_member(app, ALEX)
    update = {"update_id": 4242, "message": {"message_id": 1, "date": int(time.time()),
                                             "chat": {"id": ALEX, "type": "private", "first_name": "Alex"},
                                             "from": {"id": ALEX, "is_bot": False, "first_name": "Alex"},
                                             "text": "Sent through the webhook."}}

    async def scenario():
        bot = make_bot(app, emulator.token)
        await bot.start()
        runner = web.AppRunner(webhook_app(bot, "s3cret-value", "/telegram"))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/telegram"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as r1:
                no_secret = r1.status
            async with http.post(url, json=update, headers={SECRET_HEADER: "wrong"}) as r2:
                wrong = r2.status
            stored_before = len(bot.transport.pending_updates()) + (1 if app.journal.count_entries(
                "telegram:501") else 0)
            async with http.post(url, json=update, headers={SECRET_HEADER: "s3cret-value"}) as r3:
                right = r3.status
                stored_when_answered = bot.transport.last_update_id()
            async with http.post(url, data=b"\x00not json", headers={SECRET_HEADER: "s3cret-value"}) as r4:
                garbage = r4.status
        for _ in range(100):
            if any("Saved as quick note #1" in t for t in emulator.texts(ALEX)):
                break
            await asyncio.sleep(0.1)
        await runner.cleanup()
        await bot.stop()
        return no_secret, wrong, stored_before, right, stored_when_answered, garbage

    no_secret, wrong, stored_before, right, stored_when_answered, garbage = asyncio.run(scenario())
    assert (no_secret, wrong, right, garbage) == (401, 401, 200, 400)
    assert stored_before == 0  # rejected requests stored nothing
    assert stored_when_answered == 4242  # durable before the 200
    assert "Saved as quick note #1" in " ".join(emulator.texts(ALEX))


def test_admin_invite_users_and_revoke_from_the_command_line(live, emulator, tmp_path, data_dir, model_path,
                                                             tg_config):
    from conftest import run_cli, write_config
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path,
                       f'\n[telegram]\nbase_url = "{emulator.base_url}"\nbot_username = "spanner_test_bot"\n')
    result = run_cli(["admin", "invite", "--role", "mentor", "--config", str(cfg)])
    assert result.returncode == 0, result.stderr.decode()
    link = result.stdout.decode().strip()
    assert link.startswith("https://t.me/spanner_test_bot?start=")
    code = link.split("start=", 1)[1]
    bot = live(tg_config(), members=())
    emulator.send_text(CASEY, f"/start {code}", name="Casey")
    emulator.wait_text(CASEY, "Welcome, Casey")
    users = run_cli(["admin", "users", "--config", str(cfg)]).stdout.decode()
    assert "telegram:503" in users and "mentor" in users and "active" in users
    assert run_cli(["admin", "revoke", "telegram:503", "--config", str(cfg)]).returncode == 0
    emulator.send_text(CASEY, "Am I still in?", name="Casey")
    emulator.wait_text(CASEY, "need an invitation link")
    assert "revoked" in run_cli(["admin", "users", "--config", str(cfg)]).stdout.decode()
    unknown = run_cli(["admin", "revoke", "nobody", "--config", str(cfg)])
    assert unknown.returncode == 2 and "no person 'nobody'" in unknown.stderr.decode()
    assert bot.app.journal.count_entries("telegram:503") == 0


def test_the_token_comes_from_the_environment_or_a_0600_file_never_the_config(tmp_path, monkeypatch):
    from bot.config import ConfigError, load_config
    from bot.secrets import read_secret

    monkeypatch.delenv("SPANNER_TELEGRAM_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("123:secret\n")
    token_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret("SPANNER_TELEGRAM_TOKEN", token_file, "bot token", "telegram.token_file")
    token_file.chmod(0o600)
    assert read_secret("SPANNER_TELEGRAM_TOKEN", token_file, "bot token", "telegram.token_file") == "123:secret"
    with pytest.raises(ConfigError, match="set SPANNER_TELEGRAM_TOKEN"):
        read_secret("SPANNER_TELEGRAM_TOKEN", None, "bot token", "telegram.token_file")
    monkeypatch.setenv("SPANNER_TELEGRAM_TOKEN", "456:env")
    assert read_secret("SPANNER_TELEGRAM_TOKEN", None, "bot token", "telegram.token_file") == "456:env"
    bad = tmp_path / "bad.toml"
    bad.write_text('[telegram]\nbot_token = "123:abc"\n')
    with pytest.raises(ConfigError, match="secrets must not live in the config file"):
        load_config(bad)


def test_spanner_telegram_without_a_token_says_how_to_give_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SPANNER_TELEGRAM_TOKEN"}
    result = subprocess.run([SPANNER, "telegram"], capture_output=True, env={**env, "SPANNER_DATA_DIR":
                                                                              str(tmp_path / "d")}, timeout=60)
    assert result.returncode == 2
    assert "SPANNER_TELEGRAM_TOKEN" in result.stderr.decode()


def test_export_arrives_as_documents_and_comments_are_pushed(live, emulator):
    from storage.sharing import SharingStore
    bot = live(members=(ALEX,))
    _make_member(bot.app, BLAKE, "supervisor")
    SharingStore(bot.app.journal).supervise("telegram:502", "telegram:501")
    emulator.send_text(ALEX, "A note for my supervisor.")
    emulator.wait_text(ALEX, "Saved as quick note #1")
    emulator.send_text(ALEX, "/export")
    emulator.wait_for(lambda: len(emulator.method_calls("sendDocument")) == 2, what="two documents")
    names = [p["document"]["filename"] for _, p in emulator.method_calls("sendDocument")]
    assert names[0].endswith(".md") and names[1].endswith(".json")
    assert b"A note for my supervisor." in emulator.method_calls("sendDocument")[0][1]["document"]["content"]
    share_whole_entry(emulator, ALEX, 1)
    emulator.send_text(BLAKE, "/review", name="Blake")
    listing = emulator.wait_text(BLAKE, "Shared with you")
    emulator.press(BLAKE, listing.buttons[0][1], listing.message_id, name="Blake")
    shown = emulator.wait_text(BLAKE, "A note for my supervisor.")
    emulator.press(BLAKE, shown.buttons[0][1], shown.message_id, name="Blake")
    emulator.wait_text(BLAKE, "Type your answer to Alex")
    emulator.send_text(BLAKE, "Thanks, let's talk on Friday.", name="Blake")
    emulator.wait_text(BLAKE, "Sent to Alex.")
    pushed = emulator.wait_text(ALEX, "Blake, your supervisor, commented on entry #1: Thanks, let's talk on Friday.")
    assert pushed.buttons and pushed.buttons[0][0] == "Answer"


def test_a_checkin_is_delivered_answered_and_saved_over_telegram(live, emulator, tg_config):
    from datetime import datetime, timedelta, timezone

    from bot.engine.inputs import parse_days
    clock = FixedClock(datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc))
    bot = live(tg_config(), members=(ALEX,), clock=clock)
    _make_member(bot.app, BLAKE, "mentor")
    bot.app.mentoring.pair("telegram:502", "telegram:501", "new_spanner", clock.now())
    bot.app.mentoring.set_schedule("telegram:501", "checkin", parse_days("mon"), "09:00", "Europe/London",
                                   clock.now())
    clock.moment += timedelta(hours=1, minutes=1)
    bot.app.scheduler.tick()  # the bot's own APScheduler job may get there first: either way, once
    checkin = emulator.wait_text(ALEX, "Week 1: mapping your boundaries")
    bot.app.scheduler.tick()
    time.sleep(1.2)
    assert sum("Week 1: mapping your boundaries" in t for t in emulator.texts(ALEX)) == 1
    assert [label for label, _ in checkin.buttons] == ["Start check-in", "Snooze 2h", "Skip this week"]
    emulator.press(ALEX, "ci:start", checkin.message_id)
    emulator.wait_text(ALEX, "Which boundaries did you cross")
    for answer in ("The council and the trust.", "The ward managers.", "Weekend discharges."):
        before = len(emulator.chat(ALEX))
        emulator.send_text(ALEX, answer)
        emulator.wait_for(lambda: len(emulator.chat(ALEX)) > before, what="the next question")
        time.sleep(0.3)
    for _ in range(10):
        if bot.app.journal.load_state("telegram:501")["reflect"]["phase"] == "review":
            break
        before = len(emulator.chat(ALEX))
        emulator.send_text(ALEX, "/skip")
        emulator.wait_for(lambda: len(emulator.chat(ALEX)) > before, what="next")
        time.sleep(0.3)
    summary = emulator.wait_text(ALEX, "Here is a short summary")
    emulator.press(ALEX, "r:save", summary.message_id)
    emulator.wait_text(ALEX, "Saved as entry #1")
    entry = bot.app.journal.get_entry("telegram:501", 1)
    assert entry.week == 1 and entry.answers[0].answer == "The council and the trust."
    assert bot.app.mentoring.current_week("telegram:501") == 2


def test_draft_streaming_shows_the_question_as_it_is_written_then_sends_it(live, emulator, tg_config, tmp_path):
    config = _slow_model_config(tg_config, tmp_path, 60)  # long enough to be seen while it is written
    live(config.model_copy(update={"telegram": config.telegram.model_copy(update={"stream": "draft"})}))
    emulator.send_text(ALEX, "/reflect")
    emulator.send_text(ALEX, "Budget meeting with the council and the trust.")
    emulator.wait_text(ALEX, "(2/9)")
    emulator.send_text(ALEX, "The council wanted savings; the trust wanted to protect the ward.")
    followup = _wait_for_followup(emulator, ALEX)
    assert emulator.drafts and all(chat == ALEX for chat, _ in emulator.drafts)
    assert not followup.edits  # with drafts, the final question is a new message, never an edit


def _after(emulator, chat_id: int, needle: str) -> list:
    """The visible messages after the first one containing `needle` (none if it is not there yet)."""
    msgs = emulator.chat(chat_id)
    start = next((i for i, m in enumerate(msgs) if needle in m.text), len(msgs))
    return msgs[start + 1:]


def _is_followup(message) -> bool:
    return message.text.endswith("?") and "/9)" not in message.text


def test_streamed_followups_keep_their_place_when_answers_arrive_while_the_bot_was_down(
        make_app, tg_config, emulator, tmp_path):
    app = make_app(tg_config())
    _make_member(app, ALEX)
    bot = LiveBot(app, emulator).start()
    emulator.send_text(ALEX, "/reflect")
    emulator.wait_text(ALEX, "(1/9)")
    for step in range(2, 6):
        emulator.send_text(ALEX, "/skip")
        emulator.wait_text(ALEX, f"({step}/9)")
    bot.stop()
    app.close()
    for text in ("Finance held the purse strings and the chair deferred to them.", "Mostly the budget.",
                 "The staff story is that this is cost cutting dressed up as integration."):
        emulator.send_text(ALEX, text)  # answers to Q5, to its follow-up, and to Q6: all while down
    config = _slow_model_config(tg_config, tmp_path, 100)  # follow-ups stream for a second or two
    config = config.model_copy(update={"telegram": config.telegram.model_copy(
        update={"per_chat_per_second": 0.5, "per_chat_burst": 1})})  # a slow chat: the outbox backs up
    app = make_app(config)
    bot = LiveBot(app, emulator).start()
    try:
        def settled() -> bool:
            after = _after(emulator, ALEX, "(5/9)")
            return len(after) >= 3 and all(_is_followup(m) or "/9)" in m.text for m in after)
        try:
            emulator.wait_for(settled, 300, "three replies, settled")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {[m.text for m in _after(emulator, ALEX, '(5/9)')]}") from None
        time.sleep(1.0)
        after = _after(emulator, ALEX, "(5/9)")
        assert [_is_followup(after[0]), "(6/9)" in after[1].text, _is_followup(after[2]), len(after)] == \
            [True, True, True, 3], [m.text for m in after]
        assert not any(m.text.endswith(" …") for m in emulator.chat(ALEX))
    finally:
        bot.stop()
    with app.journal.engine.connect() as conn:
        streamed = conn.exec_driver_sql("select count(*) from outbox where stream_of is not null").scalar()
    assert streamed > 0, "nothing was streamed, so the order of streamed messages was not tested"


def test_a_kill_9_while_a_followup_streams_completes_that_message_after_restart(
        tmp_path, data_dir, model_path, emulator):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    template = prompts / "templates" / "followup.toml"
    template.write_text(template.read_text().replace('stop = ["\\n", "Note:", "Answer:"]', "stop = []"))
    cfg = tmp_path / "tg.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{data_dir}"\nprompts_dir = "{prompts}"\n'
                   f'[llm]\nmodel_path = "{model_path}"\nthreads = 2\nmax_tokens = 160\ntimeout_seconds = 240\n'
                   f'[reflection]\nfollowup_strategy = "model"\n'
                   f'[telegram]\nbase_url = "{emulator.base_url}"\npoll_timeout = 1\nper_chat_per_second = 30.0\n')
    from storage.journal import SqlJournal
    journal = SqlJournal.open(data_dir)
    _make_member(type("A", (), {"journal": journal})(), ALEX)
    journal.close()
    env = {**os.environ, "SPANNER_TELEGRAM_TOKEN": emulator.token}

    def start():
        return subprocess.Popen([SPANNER, "telegram", "--config", str(cfg)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc = start()
    try:
        emulator.send_text(ALEX, "/reflect")
        emulator.wait_text(ALEX, "(1/9)", timeout=90)
        emulator.send_text(ALEX, "Budget meeting with the council and the trust.")
        emulator.wait_text(ALEX, "(2/9)")
        emulator.send_text(ALEX, "The council wanted savings; the trust wanted to protect the ward.")
        emulator.wait_for(lambda: any(m.text.endswith(" …") for m in emulator.chat(ALEX)), 60,
                          "a half-written follow-up on screen")
        time.sleep(0.5)  # Telegram has answered with the message's id; now die, mid-stream
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert any(m.text.endswith(" …") for m in emulator.chat(ALEX))
        proc = start()
        emulator.wait_for(lambda: (after := _after(emulator, ALEX, "(2/9)")) and _is_followup(after[-1])
                          and not any(m.text.endswith(" …") for m in after), 300, "the follow-up, completed")
        time.sleep(1.5)
        after = _after(emulator, ALEX, "(2/9)")
        assert len(after) == 1 and _is_followup(after[0]), [m.text for m in after]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_delete_on_telegram_leaves_no_copy_in_inbox_outbox_log_or_backups(live, emulator, tmp_path):
    from conftest import decrypt_everything, every_file_bytes
    from storage import lifecycle
    marker = "PANGOLIN-DELETE-ME-5521"
    bot = live()
    app = bot.app
    emulator.send_text(ALEX, f"The {marker} plan for the discharge hub.")
    emulator.wait_text(ALEX, "Saved as quick note #1")
    emulator.send_text(ALEX, "/show 1")
    emulator.wait_text(ALEX, marker)  # a reply quoting it went through the outbox
    db = app.config.data_dir / "spanner.db"
    copies = [pt for _, _, pt in decrypt_everything(db, app.journal.keys) if marker.encode() in pt]
    assert copies, "the scan finds the text before it is deleted"
    with app.journal.engine.connect() as conn:
        ciphertexts = [row[0] for row in conn.exec_driver_sql("select note_ct from entries")]
    emulator.send_text(ALEX, "/delete 1")
    ask = emulator.wait_text(ALEX, "Delete entry #1")
    emulator.press(ALEX, "del:yes:1", ask.message_id)
    emulator.wait_text(ALEX, "is deleted")
    def all_sent() -> bool:
        with app.journal.engine.connect() as conn:
            return not conn.exec_driver_sql("select count(*) from outbox where sent_at is null").scalar()
    emulator.wait_for(all_sent, 30, "every reply confirmed")
    backup = lifecycle.backup(app.config.data_dir, tmp_path / "backups")
    for where in (db, backup):
        leftovers = [(t, f) for t, f, pt in decrypt_everything(where, app.journal.keys) if marker.encode() in pt]
        assert not leftovers, f"{where.name}: the deleted text still decrypts from {leftovers}"
    for folder in (app.config.data_dir, tmp_path / "backups"):
        for path, content in every_file_bytes(folder):
            assert marker.encode() not in content, path
            for blob in ciphertexts:
                assert blob not in content, f"the deleted entry's ciphertext is still in {path}"


def test_a_portfolio_export_arrives_as_markdown_and_pdf_documents(live, emulator):
    bot = live(members=(ALEX,))
    emulator.send_text(ALEX, "Met Priya Shah on Ward 7B about the rota.")
    emulator.wait_text(ALEX, "Saved as quick note #1")
    emulator.send_text(ALEX, "/export portfolio wsn")
    check = emulator.wait_text(ALEX, "could identify someone")
    assert "people's names (1)" in check.text and "wards (1)" in check.text and "Priya" not in check.text
    emulator.press(ALEX, "pf:labels:yes", check.message_id)
    ready = emulator.wait_text(ALEX, "Add a short note saying how AI was used")
    emulator.press(ALEX, "pf:make:ai", ready.message_id)
    emulator.wait_for(lambda: len(emulator.method_calls("sendDocument")) == 2, what="two documents")
    docs = [p["document"] for _, p in emulator.method_calls("sendDocument")]
    assert docs[0]["filename"].endswith(".md") and docs[1]["filename"].endswith(".pdf")
    assert b"Person A on [ward] about the rota." in docs[0]["content"] and b"Priya" not in docs[0]["content"]
    assert docs[1]["content"].startswith(b"%PDF")
    assert bot.app is not None
