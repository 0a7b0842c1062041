"""The journal over time: /search from a per-person in-memory index, /insights with charts that cite entries.

Search must give what a person would find by decrypting every entry and reading it (a property test),
follow every write, edit, delete and forget (in this process and in another), leave nothing on disk,
and keep unrelated entries out by meaning. Every insight must rest on entries that show it; charts
are real PNGs, sent as photos on Telegram and saved as files on the console.
"""

from __future__ import annotations

import re
import sqlite3
import struct
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.engine.records import Answer, Entry, Event
from bot.engine.search_index import Query, SearchIndex, parse_query, prefixes
from bot.evaluation import search_floor
from conftest import ROOT, Chat, every_file_bytes
from storage.journal import SqlJournal
from storage.people import People
from storage.sharing import SharingStore
from telegram_emulator import TelegramEmulator
from tg_helpers import LiveBot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def press(chat: Chat, data: str) -> list[str]:
    replies = chat.loop.run_until_complete(chat.app.engine.handle(Event(user=chat.user, choice=data)))
    chat.replies.extend(replies)
    return [r.text for r in replies]


# ----- search equals decrypt-and-scan -----------------------------------------------------------------

VOCAB = ["ward", "council", "discharge", "discharges", "carers", "budget", "pilot", "rota", "Ärztin",
         "re-admission", "the", "about", "housing", "trust", "board", "estates", "power", "story"]


def brute_force(journal, user: str, query: Query, qvec, floor: float, margin: float, limit: int):
    """What a person would get by decrypting every entry and checking each by hand."""
    rows = list(journal.search_candidates(user))
    q = np.asarray(qvec, dtype=np.float64)
    sims = {e.number: float(np.dot(q, v) / (np.linalg.norm(q) * np.linalg.norm(v)))
            for e, v in rows if v is not None and np.linalg.norm(v) > 0}
    bar = max(floor, max(sims.values(), default=0.0) - margin)
    found = []
    for entry, _ in rows:
        text = entry.full_text().lower()
        hits = [t for t in query.terms if re.search(rf"\b(?:{'|'.join(map(re.escape, prefixes(t)))})", text)]
        if query.text and not hits and sims.get(entry.number, -1.0) < bar:
            continue  # neither a word nor close enough in meaning (an entry without a vector has no meaning)
        meaning = sims.get(entry.number, 0.0) if query.text else 0.0  # filters alone: newest first
        if query.tags and not set(query.tags) <= {t.lower() for t in entry.tags}:
            continue
        if query.since is not None and entry.created_at.date() < query.since:
            continue
        keyword = len(hits) / len(query.terms) if query.terms else 0.0
        found.append((keyword + meaning, entry.number))
    found.sort(key=lambda pair: (-pair[0], -pair[1]))
    return [n for _, n in found[:limit]]


journal_strategy = st.lists(
    st.tuples(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=8),
              st.lists(st.sampled_from(["power", "housing", "trust"]), max_size=2, unique=True)),
    min_size=1, max_size=12)
change_strategy = st.lists(st.tuples(st.sampled_from(["edit", "delete", "add"]), st.integers(0, 20),
                                     st.lists(st.sampled_from(VOCAB), min_size=1, max_size=5)), max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journal_=journal_strategy, changes=change_strategy,
       query_words=st.lists(st.sampled_from(VOCAB + ["disch", "zebra", "a"]), max_size=3),
       tag=st.sampled_from([None, "power", "housing"]), since=st.sampled_from([None, -1, 0, 1]),
       margin=st.sampled_from([0.05, 0.3, 2.0]), seed=st.integers(0, 10_000))
def test_search_results_equal_a_brute_force_decrypt_and_scan_of_random_journals(
        tmp_path_factory, journal_, changes, query_words, tag, since, margin, seed):
    data = tmp_path_factory.mktemp("prop")
    journal = SqlJournal.open(data)
    rng = np.random.default_rng(seed)
    user = "console:prop"
    try:
        index = SearchIndex(lambda: journal, None)
        for words_, tags in journal_:
            journal.add_entry(user, Entry(kind="note", note=" ".join(words_), tags=tags), rng.normal(size=16).tolist())
        index.person(user)  # built now, so the changes below are followed, not rebuilt
        for kind, which, words_ in changes:
            numbers = sorted(e.number for e, _ in journal.search_candidates(user))
            if kind == "add" or not numbers:
                journal.add_entry(user, Entry(kind="note", note=" ".join(words_)), rng.normal(size=16).tolist())
            elif kind == "edit":
                entry = journal.get_entry(user, numbers[which % len(numbers)])
                entry.note = " ".join(words_)
                journal.update_entry(user, entry, rng.normal(size=16).tolist())
            else:
                journal.delete_entry(user, numbers[which % len(numbers)])
        today = datetime.now(timezone.utc).date()
        text = " ".join(query_words)
        args = text + (f" tag:{tag}" if tag else "") + \
            (f" since {(today + timedelta(days=since)).isoformat()}" if since is not None else "")
        query = parse_query(args)
        if query.empty:
            return
        qvec = rng.normal(size=16).tolist()
        got = [m.entry.number for m in index.search(user, query, qvec, 0.0, margin, 8, timezone.utc)]
        assert got == brute_force(journal, user, query, qvec, 0.0, margin, 8)
        assert index.builds == 1  # every change was followed by decrypting only what changed
    finally:
        journal.close()


# ----- the index follows the journal --------------------------------------------------------------------

def _numbers(reply: str) -> list[int]:
    return [int(n) for n in re.findall(r"^#(\d+) ·", reply, re.M)]


def _results(reply: str) -> dict[int, str]:
    """Entry number -> why it matched, from a /search reply."""
    return {int(n): why for n, why in re.findall(r"^#(\d+) ·.*\n\s+(.*)$", reply, re.M)}


def test_the_index_follows_every_write_edit_delete_and_forget_in_this_process_and_another(app, make_config):
    chat = Chat(app, "ida")
    index = app.engine.ctx.search_index
    chat.say("/note The estates team will repaint the discharge lounge.")
    chat.say("/note Carers asked for parking permits at the hospice.")
    assert _numbers(chat.say("/search lounge")[0]) == [1]
    assert index.builds == 1
    chat.say("/edit 1")
    chat.say("1")  # the note itself
    chat.say("The estates team will move the discharge lounge to ward 5.")
    assert _numbers(chat.say("/search ward")[0]) == [1]
    assert "Nothing" in chat.say("/search repaint")[0]
    chat.say("/delete 2")
    chat.say("yes")
    assert "Nothing" in chat.say("/search parking")[0]
    # Another process writes to the same data directory: found on the next search.
    other = SqlJournal.open(app.config.data_dir)
    other.add_entry(chat.user, Entry(kind="note", note="Budget for the frailty pilot is agreed."), None)
    other.close()
    assert _numbers(chat.say("/search frailty")[0]) == [3]
    assert index.builds == 1 and index.refreshed == 3  # followed each of the 3 changes; never rebuilt
    # Idle: dropped after the configured time, rebuilt by decrypting once on the next search.
    index.idle_seconds = 0.0
    index.sweep()
    assert not index.holds(chat.user)
    index.idle_seconds = 1800.0
    assert _numbers(chat.say("/search frailty")[0]) == [3] and index.builds == 2
    # Forget: the index goes at once, with everything else.
    chat.say("/forget")
    press(chat, "forget:1")
    press(chat, "forget:2")
    assert not index.holds(chat.user)
    chat.close()


def test_search_says_why_each_entry_matched_and_filters_by_date_and_tag(app):
    chat = Chat(app, "max")
    chat.say("/note Agreed with the ward to pilot a discharge huddle every morning.")
    chat.say("/note Booked a week off in Cornwall with the family for August.")
    entry = app.journal.get_entry(chat.user, 2)
    entry.tags = ["holiday"]
    app.journal.update_entry(chat.user, entry, app.engine.ctx.embed_entry(entry))
    words = chat.say("/search discharges")[0]
    assert _numbers(words) == [1] and "matched: discharge" in words
    meaning = chat.say("/search time off in summer")[0]
    assert _numbers(meaning) == [2]
    assert "closest in meaning: “Booked a week off in Cornwall with the family for August.”" in meaning
    assert _numbers(chat.say("/search tag:holiday")[0]) == [2]
    assert "Nothing" in chat.say("/search discharge tag:holiday")[0]
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=2)).date().isoformat()
    assert "Nothing" in chat.say(f"/search discharge since {tomorrow}")[0]
    assert _numbers(chat.say("/search discharge since 2020-01-01")[0]) == [1]
    assert "year-month-day" in chat.say("/search discharge since last week")[0]
    assert "Tell me what to look for" in chat.say("/search")[0]
    chat.close()


def test_nothing_about_the_index_reaches_disk(make_app, make_config):
    app = make_app()
    chat = Chat(app, "nia")
    secret, other = "zanzibarquokka", "plovdivmarmot"
    chat.say(f"/note The {secret} pathway starts with {other} on the frailty ward next month.")
    before = set(p for p, _ in every_file_bytes(app.config.data_dir))
    for query in (secret, f"{other} frailty", "when does the new care pathway begin"):
        assert _numbers(chat.say(f"/search {query}")[0]) == [1]
    app.journal.engine.dispose()  # let SQLite finish with its files, then read every byte there is
    after = dict(every_file_bytes(app.config.data_dir))
    assert all(p.name.endswith(("-wal", "-shm")) for p in set(after) - before)  # no index file appeared
    for path, content in after.items():
        for needle in (secret, other, secret.upper(), other.upper()):
            assert needle.encode() not in content, (path, needle)
    chat.close()


# ----- the meaning floor ------------------------------------------------------------------------------

def test_the_similarity_floor_hides_unrelated_entries_on_queries_with_known_answers(app):
    """Our own journal and queries (some with no answer), through /search as a person would type them."""
    entries, queries = search_floor.load(ROOT / "tests" / "fixtures" / "search_calibration.toml")
    # The configured floor and margin are the ones the calibration picks.
    sims = search_floor.similarities(app.embedder, entries, queries)
    chosen = search_floor.choose(sims, queries)
    settings_ = app.engine.ctx.settings
    assert (chosen.floor, chosen.margin) == (round(settings_.search_min_similarity, 2),
                                             round(settings_.search_margin, 2))
    chat = Chat(app, "cal")
    for e in entries:
        chat.say(f"/note {e.note}")
    by_meaning = right_by_meaning = found_wanted = wanted = 0
    for text, answers in queries:
        results = _results(chat.say(f"/search {text}")[0])
        if not answers:
            assert results == {}, text  # nothing in the journal is about this: nothing is offered
            continue
        meaning = {n for n, why in results.items() if why.startswith("closest in meaning")}
        by_meaning, right_by_meaning = by_meaning + len(meaning), right_by_meaning + len(meaning & answers)
        found_wanted, wanted = found_wanted + len(set(results) & answers), wanted + len(answers)
    # With this small embedder about half of what meaning alone offers is right, and more than half of
    # the right entries are found (spanner bench --data prints the calibration's own figures).
    assert right_by_meaning / by_meaning >= 0.5 and found_wanted / wanted >= 0.55, \
        (right_by_meaning, by_meaning, found_wanted, wanted)
    chat.close()


# ----- insights ---------------------------------------------------------------------------------------

def reflection(meeting: str, engaged: str, level: str, stance: str, step: str, tags: list[str]) -> Entry:
    return Entry(kind="reflection", protocol="after_meeting", summary="Summary.", tags=tags, answers=[
        Answer("meeting", "What was the meeting, and who was there?", meeting),
        Answer("engagement", "How did you engage?", engaged), Answer("level", "Strategic or tactical?", level),
        Answer("power", "Where did power sit?", "", skipped=True),
        Answer("stance", "How do you think they saw you?", stance), Answer("next_step", "Next step?", step)])


def journal_entries() -> list[tuple[int, Entry]]:
    """(days ago, entry): four reflections and a note over four months."""
    return [
    (120, reflection("Discharge huddle with the ward manager and Priya from housing.", "Persuading", "Tactical",
                     "Critical friend", "Call the housing lead about discharge dates.", ["persuading", "housing"])),
    (90, reflection("Budget panel with the finance director.", "I bargained over the nurse post.", "Strategic",
                    "Regulator", "Send the finance director the pilot figures.", ["bargaining", "budget"])),
    (60, Entry(kind="note", note="Quick word with Priya about the carers' forum.", tags=["housing"])),
    (30, reflection("Catch-up with the ward manager.", "Confronting", "Moved between both", "Critical friend",
                    "Ask the hospice for a named contact.", ["confronting", "power"])),
    (5, reflection("Called the housing lead about discharge dates; Priya joined.", "A mix", "Tactical",
                   "Somewhere between", "", ["a mix", "housing", "power"])),
    ]


@pytest.fixture
def journal_over_time(app):
    user = "console:ola"
    People(app.journal).redeem(People(app.journal).create_invite("spanner"), user, "Ola")
    entries = journal_entries()
    for _, entry in entries:
        app.journal.add_entry(user, entry, app.engine.ctx.embed_entry(entry))
    now = datetime.now(timezone.utc)
    con = sqlite3.connect(app.config.data_dir / "spanner.db")
    for number, (days, _) in enumerate(entries, start=1):
        when = (now - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S.%f")
        con.execute("update entries set created_at = ? where number = ? and user_id = "
                    "(select id from users where handle = ?)", (when, number, user))
    con.commit()
    con.close()
    return user


def test_every_insight_cites_only_entries_that_hold_its_evidence(app, journal_over_time, tmp_path):
    chat = Chat(app, "ola")
    chat.console.files_dir = tmp_path
    flow = app.engine.insights
    found, text = flow.compose(chat.user, None)
    by_number = {e.number: e for e, _ in app.journal.search_candidates(chat.user)}

    def holds(number: int, words: str) -> bool:
        e = by_number[number]
        own = (e.full_text() + " " + " ".join(e.tags)).lower()
        return all(w.lower() in own for w in words.split())

    groups = {"approaches": found.approaches, "levels": found.levels, "stances": found.stances,
              "themes": found.themes, "people": found.people}
    for name, cited in groups.items():
        assert cited, name
        for c in cited:
            for number, words in c.evidence.items():
                assert holds(number, words), (name, c.label, number, words)
    assert {c.label: c.numbers for c in found.approaches} == {
        "Bargaining": [2], "Persuading": [1], "Confronting": [4], "A mix": [5]}
    assert {c.label: c.numbers for c in found.people}["Priya"] == [1, 3, 5]
    assert {c.label: c.numbers for c in found.people}["ward manager"] == [1, 4]
    assert "Regulator" not in {c.label for c in found.people}  # a button pressed is not a person named
    taken = {p.set_in: p for p in found.next_steps}
    assert taken[1].later == 5 and all(holds(5, w) for w in taken[1].shared)
    assert taken[2].later is None and taken[4].later is None
    # The text says the same, and cites nothing else: each line's #numbers are the entries behind it.
    for line in text.split("\n"):
        cited_here = {int(n) for n in re.findall(r"#(\d+)", line)}
        assert cited_here <= set(by_number), line
    assert "Persuading in 1 (#1)" in text and "Priya in 3 (#1, #3, #5)" in text
    assert "#1 “Call the housing lead about discharge dates.”: mentioned again in #5" in text
    # Since a date: only what came after it.
    later, text_since = flow.compose(chat.user, (datetime.now(timezone.utc) - timedelta(days=45)).date())
    assert later.entries == 2 and {c.label for c in later.approaches} == {"Confronting", "A mix"}
    assert "#1" not in text_since and "#2" not in text_since
    chat.close()


def test_insights_charts_are_valid_pngs_saved_as_files_on_the_console(app, journal_over_time, tmp_path):
    chat = Chat(app, "ola")
    chat.console.files_dir = tmp_path
    replies = chat.say("/insights")
    assert replies[0].startswith("Looking across your 5 entries")
    charts = [r for r in chat.replies if r.attachment is not None]
    assert [r.attachment.mime for r in charts] == ["image/png", "image/png"]
    for r in charts:
        width, height = png_size(r.attachment.data)
        assert width >= 1000 and height >= 500  # sharp at phone size
        assert "In words:" in r.text  # the text alternative
    assert "Persuading 1" in charts[0].text and "housing" in charts[1].text
    saved = sorted(tmp_path.glob("*.png"))
    assert len(saved) == 2 and all(png_size(p.read_bytes())[0] >= 1000 for p in saved)
    printed = chat.out.getvalue()
    assert "(saved to" in printed and "How you engaged, by month" in printed
    assert "year-month-day" in chat.say("/insights since soon")[0]
    chat.close()


def test_insights_since_the_last_share_and_kept_as_an_entry_are_seen_only_once_shared(app, journal_over_time,
                                                                                      tmp_path):
    ola, sue = Chat(app, "ola"), Chat(app, "sue")
    ola.console.files_dir = sue.console.files_dir = tmp_path  # the charts are saved here, not in the checkout
    People(app.journal).redeem(People(app.journal).create_invite("supervisor"), sue.user, "Sue")
    SharingStore(app.journal).supervise(sue.user, ola.user)
    assert ola.say("/insights since")[0].startswith("You haven't shared an entry yet")
    ola.say("/share 1")
    press(ola, "share:scope:full")
    press(ola, "share:labels:no")
    press(ola, "share:confirm:yes")
    ola.say("/note After the share: persuaded the board about the pilot.")
    since = ola.say("/insights since")
    assert since[0].startswith("Looking across your 1 entries since")
    assert sue.say("/insights")[0] != since[0]  # a supervisor's own (empty) journal, never Ola's
    ola.say("/insights")
    keep = next(r for r in ola.replies if r.choices and r.choices[0].data.startswith("inskeep:"))
    kept = press(ola, keep.choices[0].data)[0]
    number = int(re.search(r"entry #(\d+)", kept).group(1))
    listing = sue.say("/review")[0]
    assert f"#{number}" not in listing  # not shared: the supervisor sees only #1
    ola.say(f"/share {number}")
    press(ola, "share:scope:full")
    press(ola, "share:labels:no")
    press(ola, "share:confirm:yes")
    sue.say("/review")
    share_ids = [c.data for c in sue.replies[-1].choices if c.data.startswith("rv:")]
    shown = [press(sue, d)[0] for d in share_ids]
    assert any("How you engaged" in s for s in shown)
    ola.close()
    sue.close()


def test_insights_charts_arrive_as_photos_on_telegram(make_app, make_config):
    emu = TelegramEmulator().start()
    try:
        app = make_app(make_config(**{"telegram.base_url": emu.base_url, "telegram.poll_timeout": 1,
                                      "telegram.per_chat_per_second": 30.0, "telegram.per_chat_burst": 10}))
        user = "telegram:701"
        People(app.journal).redeem(People(app.journal).create_invite("spanner"), user, "Tam")
        for _, entry in journal_entries():
            app.journal.add_entry(user, entry, None)
        bot = LiveBot(app, emu).start()
        try:
            emu.send_text(701, "/insights", name="Tam")
            emu.wait_for(lambda: len(emu.method_calls("sendPhoto")) == 2, what="two photos")
            text = emu.wait_text(701, "Looking across your 5 entries").text
            assert "How you engaged:" in text
            for _, params in emu.method_calls("sendPhoto"):
                assert params["photo"]["filename"].endswith(".png")
                assert png_size(params["photo"]["content"])[0] >= 1000
                assert "In words:" in params["caption"]
        finally:
            bot.stop()
    finally:
        emu.stop()


def test_ingest_shows_progress_in_chunks_and_embeds_nothing_twice(data_dir, make_config, capsys):
    from bot.compose import build_embedder
    from bot.retrieval.cards import load_cards
    from bot.retrieval.literature import LiteratureIndex

    config = make_config()
    cards = load_cards(config.paths.knowledge_dir)[:3]
    index = LiteratureIndex(data_dir / "fresh-chroma", build_embedder(config, threads=2, literature=True))
    first = index.ingest(cards, progress=True)
    assert first.chunks_embedded == sum(len(c.chunks()) + len(c.cues) for c in cards) == index.count()
    assert f"{first.chunks_embedded}/{first.chunks_embedded}" in capsys.readouterr().err
    again = index.ingest(cards)
    assert again.chunks_embedded == 0 and again.unchanged_cards == 3 and index.count() == first.chunks_embedded
    assert index.suggest(cards[0].cues[0]) is not None
