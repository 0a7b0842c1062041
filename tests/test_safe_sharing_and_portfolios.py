"""Sharing and exporting safely: de-identification that keeps the text readable, and portfolio forms.

Real Presidio over the real spaCy pipeline (loaded once per test session), real
reportlab PDFs read back with pdftotext, real SQLite and the console adapter.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import update

from bot.deidentify.presidio_finder import PresidioFinder
from bot.engine.deidentify import IDENTIFIER_KINDS, Rules, plan
from bot.engine.portfolio import gaps
from bot.engine.prompt_data import load_prompt_data
from bot.engine.records import Event
from conftest import ROOT, Chat, FixedClock, run_cli, write_config
from storage.models import EntryRow
from storage.people import People
from storage.sharing import SharingStore

SENTENCES = ROOT / "tests" / "fixtures" / "deidentify_sentences.txt"
PRONOUNS = re.compile(r"(?<![\w'’])(?:I|I'd|I'm|I've|I'll|me|my|myself|we|we're|us|our)(?![\w'’])")
LABEL = re.compile(r"(?:Person|Organisation|Place) [A-Z]|\[[^\]]+\]")
ROLES = ("the ward manager", "the matron", "The social worker", "the team lead", "the charge nurse",
         "the staff nurse", "the discharge coordinator", "the housing officer", "the physio", "the OT")


@pytest.fixture(scope="module")
def prompts():
    return load_prompt_data(ROOT / "prompts")


@pytest.fixture(scope="module")
def finder(prompts):
    found = PresidioFinder(prompts.deidentify)
    found.load()
    return found


def corpus() -> list[list[str]]:
    entries, current = [], []
    for line in SENTENCES.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                entries.append(current)
            current = []
            continue
        current.append(line)
    return entries + [current] * bool(current)


def label_word(kind: str) -> str:
    return {"person": "Person", "organisation": "Organisation", "place": "Place"}.get(kind, f"[{kind}]")


def test_our_sentences_lose_every_identifier_and_keep_pronouns_roles_quotes_and_one_label_per_person(finder,
                                                                                                       prompts):
    entries = corpus()
    assert sum(len(e) for e in entries) >= 40
    rules = Rules(prompts.deidentify)
    missed, pronouns_replaced, kinds_seen = [], [], set()
    for lines in entries:
        texts = [line.replace("{", "").replace("}", "") for line in lines]
        checked = plan(texts, finder.find(texts), rules, label_word)
        kinds_seen |= {g.kind for g in checked.groups}
        out = checked.apply(finder)
        for line, text, result in zip(lines, texts, out):
            # 0 identifiers missed: nothing in braces is left for a reader.
            missed += [(value, result) for value in re.findall(r"\{(.*?)\}", line) if value in result]
            # 0 writer pronouns replaced.
            if PRONOUNS.findall(text) != PRONOUNS.findall(result):
                pronouns_replaced.append(result)
            # Quotes and punctuation survive: outside what was replaced, the same marks in the same order.
            marks = re.sub(r"[\w\s]", "", re.sub(r"\{.*?\}", "", line))
            assert re.sub(r"[\w\s]", "", LABEL.sub("", result)).replace("'", "").replace("’", "") == \
                marks.replace("'", "").replace("’", ""), result
            for role in ROLES:
                if role in text:
                    assert role in result, (role, result)
        # One label per distinct person in an entry, and a different one for a different person.
        labels: dict[str, set[str]] = {}
        for swap in checked.swaps:
            original = texts[swap.text][swap.start:swap.end]
            labels.setdefault(original, set()).add(checked.groups[swap.group].label)
        assert all(len(v) == 1 for v in labels.values()), labels
        if "Priya Shah" in labels:
            assert labels["Priya Shah"] == labels["Priya"] != labels["Mrs K"]
        if "Mr K" in labels:
            assert labels["Mr K"] != labels["Mrs K"]
        if "Tom Reilly" in labels:
            assert labels["Tom Reilly"] == labels["Tom"]
    assert missed == []
    assert pronouns_replaced == []
    assert set(IDENTIFIER_KINDS) | {"person", "organisation"} <= kinds_seen


def test_a_valid_nhs_number_is_caught_and_one_with_a_wrong_checksum_is_not(finder):
    text = "Her NHS number is 943 476 5919; the letter said 943 476 5918 by mistake."
    found = [(text[f.start:f.end], f.kind) for f in finder.find([text])[0]]
    assert ("943 476 5919", "nhs_number") in found
    assert not any(value == "943 476 5918" and kind == "nhs_number" for value, kind in found)


# ----- the author's side, through the engine ----------------------------------------------------

def press(chat: Chat, data: str):
    replies = chat.loop.run_until_complete(chat.app.engine.handle(Event(user=chat.user, choice=data)))
    chat.replies.extend(replies)
    return replies


def member(app, handle: str, role: str) -> None:
    people = People(app.journal)
    people.redeem(people.create_invite(role), handle, handle.split(":")[1].title())


NOTE = ('Met Priya Shah and Dave from Westfield Medical Centre about Mr Jones (NHS number 943 476 5919, '
        'postcode LS1 4AP). Priya said "we can\'t wait", and I\'d agreed with the ward manager.')


def test_the_share_check_names_kinds_and_the_preview_is_exactly_what_the_supervisor_reads(app, data_dir):
    for handle, role in (("console:ana", "spanner"), ("console:sue", "supervisor")):
        member(app, handle, role)
    SharingStore(app.journal).supervise("console:sue", "console:ana")
    ana, sue = Chat(app, "ana"), Chat(app, "sue")
    ana.say(NOTE)
    ana.say("/share 1")
    check = press(ana, "share:scope:full")[0].text
    assert "people's names (3)" in check and "NHS numbers (1)" in check and "postcodes (1)" in check
    assert "incident reporting system" in check
    assert "Priya" not in check and "943" not in check  # by kind, never by value
    preview, changes = press(ana, "share:labels:yes")
    assert "Priya" not in preview.text and "943 476 5919" not in preview.text and "LS1 4AP" not in preview.text
    assert "Met Person A and Person B from Organisation A about Person C" in preview.text
    assert 'Person A said "we can\'t wait", and I\'d agreed with the ward manager.' in preview.text
    # Undo one single replacement: the organisation stays as written, everything else stays replaced.
    number = next(i for i, line in enumerate(changes.text.splitlines()) if "Westfield" in line)
    preview, changes = press(ana, f"share:undo:{number - 1}")
    assert "Westfield Medical Centre" in preview.text and "Priya" not in preview.text
    assert "kept as you wrote it" in changes.text
    press(ana, "share:confirm:yes")
    sue.say("/review")
    shown = press(sue, sue.console._choices[0].data)[0].text
    approved = preview.text.split("\n\n", 1)[1]
    assert shown.split("\n\n", 1)[1].startswith(approved)
    logs = "".join(p.read_text(errors="replace") for p in (data_dir / "logs").rglob("*") if p.is_file())
    assert "Priya" not in logs and "943 476 5919" not in logs and "Westfield" not in logs


# ----- portfolios ---------------------------------------------------------------------------------

ANSWERS = {step: f"answer for {step} mk{step.replace('_', '')} about the rota" for step in
           ("meeting", "wants", "engagement", "level", "power", "story", "knock_on", "stance", "next_step")}


def reflect(chat: Chat) -> None:
    """A whole after-meeting reflection typed by its author; each answer carries its step's marker."""
    chat.say("/reflect")
    for step in chat.app.prompts.protocols["after_meeting"].steps:
        chat.say(ANSWERS[step.id])
        state = chat.app.journal.load_state(chat.user).get("reflect") or {}
        if state.get("phase") == "followup":
            chat.say("/skip")
    chat.say("save")
    assert chat.app.journal.get_entry(chat.user, 1).answers


def export(chat: Chat, args: str, labels: str = "yes", themes=(), make: str = "ai", undo=()) -> dict[str, bytes]:
    first = chat.say(f"/export portfolio {args}")
    assert "could identify someone" in first[0], first
    replies = press(chat, f"pf:labels:{labels}")
    while "which of the Code's themes" in replies[0].text:
        for theme in themes:
            press(chat, f"pf:theme:{theme}")
        replies = press(chat, "pf:next")
    for number in undo:
        press(chat, f"pf:undo:{number}")
    made = press(chat, f"pf:make:{make}")
    return {r.attachment.name.rsplit(".", 1)[1]: r.attachment.data for r in made if r.attachment}


def pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "form.pdf"
    path.write_bytes(data)
    assert data.startswith(b"%PDF")
    return subprocess.run([shutil.which("pdftotext") or "pdftotext", str(path), "-"], capture_output=True,
                          check=True, text=True).stdout


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def fields_of(markdown: str) -> dict[str, str]:
    """Each form box's label -> its text, from the Markdown."""
    parts = re.split(r"^\*\*(.+)\*\*$", markdown, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n#")[0] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize("name", ["nmc", "hcpc", "swe", "gibbs", "wsn"])
def test_each_portfolio_form_is_filled_from_the_right_steps_and_its_pdf_says_what_its_markdown_says(
        app, name, tmp_path):
    chat = Chat(app, "ana")
    reflect(chat)
    files = export(chat, name, themes=(0, 2))
    markdown = files["md"].decode()
    fmt = app.prompts.exports[name]
    boxes = fields_of(markdown)
    for field in fmt.fields:
        text = boxes[field.label]
        for step in ANSWERS:
            marker = f"mk{step.replace('_', '')}"
            # Every step lands in the field that names it (or the one that takes the rest), and only there.
            wanted = step in field.steps or (field.rest and not any(step in f.steps for f in fmt.fields))
            assert (marker in text) == wanted, (name, field.id, step)
        if field.source == "themes":
            assert text.strip() == "Prioritise people; Preserve safety"
    assert "Use of AI" in markdown and "no text left that server" in markdown
    assert words(pdf_text(files["pdf"], tmp_path)) == words(markdown)


def test_the_date_filters_pick_the_entries_and_hcpc_lists_every_gap_of_three_months(make_app):
    clock = FixedClock(datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc))
    app = make_app(clock=clock)
    chat = Chat(app, "ana")
    for number, day in enumerate((date(2026, 1, 10), date(2026, 2, 1), date(2026, 6, 15), date(2026, 7, 1)), 1):
        chat.say(f"CPD activity mk{day:%m%d}: shadowed the discharge team.")
        # The journal dates an entry by the host's clock: write the day it happened on.
        with app.journal.sessions.begin() as s:
            s.execute(update(EntryRow).where(EntryRow.number == number)
                      .values(created_at=datetime(day.year, day.month, day.day, 9, 0, tzinfo=timezone.utc)))
    clock.moment = datetime(2026, 8, 1, 9, 0, tzinfo=timezone.utc)
    markdown = export(chat, "hcpc from 2026-01-15 to 2026-06-30", make="plain")["md"].decode()
    assert "mk0201" in markdown and "mk0615" in markdown
    assert "mk0110" not in markdown and "mk0701" not in markdown
    assert "01 Feb 2026 to 15 Jun 2026: explain" in markdown
    assert "15 Jan 2026 to 01 Feb 2026" not in markdown and "Use of AI" not in markdown
    markdown = export(chat, "hcpc from 2026-06-01", make="plain")["md"].decode()
    assert "mk0615" in markdown and "mk0701" in markdown and "No gap of 3 months or more" in markdown
    assert "couldn't read “2026-13-01”" in chat.say("/export portfolio wsn from 2026-13-01")[0]
    assert "FORMAT is one of: gibbs, hcpc, nmc, swe, wsn" in chat.say("/export portfolio rcn")[0]
    assert chat.say("/export portfolio wsn to 2025-01-01") == ["There are no entries in that period to put in a "
                                                               "portfolio."]
    # Three months to the day is a gap to explain; a day less is not.
    assert gaps([date(2026, 1, 31), date(2026, 4, 30)], None, None, 3) == [(date(2026, 1, 31), date(2026, 4, 30))]
    assert gaps([date(2026, 1, 31), date(2026, 4, 29)], None, None, 3) == []


def test_nothing_the_author_removed_appears_in_the_exported_files(app, tmp_path):
    chat = Chat(app, "ana")
    chat.say(NOTE)
    files = export(chat, "wsn", undo=())
    markdown, text = files["md"].decode(), pdf_text(files["pdf"], tmp_path)
    for removed in ("Priya", "Dave", "Westfield", "Jones", "943 476 5919", "LS1 4AP"):
        assert removed not in markdown and removed not in text
    assert "Person A" in markdown and "[NHS number]" in markdown and "the ward manager" in markdown


def test_an_admin_exports_a_portfolio_with_the_check_by_kind(tmp_path, data_dir, model_path, make_app, make_config):
    app = make_app(make_config(), clock=FixedClock())
    Chat(app, "ana").say(NOTE)
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    result = run_cli(["admin", "export", "ana", "--portfolio", "gibbs", "--ai-note", "--to", str(tmp_path / "out"),
                      "--config", str(cfg)])
    assert result.returncode == 0, result.stderr.decode()
    assert "people's names (3)" in result.stderr.decode() and "Priya" not in result.stderr.decode()
    markdown = next((tmp_path / "out").glob("*.md")).read_text()
    assert "Gibbs" in markdown and "Priya" not in markdown and "Use of AI" in markdown
    assert next((tmp_path / "out").glob("*.pdf")).read_bytes().startswith(b"%PDF")
