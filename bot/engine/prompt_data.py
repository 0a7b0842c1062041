"""Reads and validates the editable data in prompts/: protocols, messages, guard rules, templates.

Organisations adapt Spanner by editing these files, so a mistake must be easy
to find: PromptDataError names the file, the line and the fix. Everything is
checked at start-up, never half-way through someone's reflection.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .export_formats import DeidRules, ExportFormat, load_deid, load_formats
from .safety_data import SafetyRules, compiles, load_safety


class PromptDataError(Exception):
    """A prompts/ file is malformed: the message names file, line and fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _all_questions(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    for line in values:
        if not line.strip().endswith("?"):
            raise ValueError(f"{what} {line!r} must be a question ending with '?'")
    return values


def _frames(values: tuple[str, ...]) -> tuple[str, ...]:
    for line in values:
        if line.count("{quote}") != 1 or not line.strip().endswith("?"):
            raise ValueError(f"frame {line!r} must hold {{quote}} once and end with '?'")
        try:
            line.format(quote="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"frame {line!r} may hold no placeholder but {{quote}}") from None
    return values


class Bank(_Strict):
    """Curated follow-up questions and quote-back frames: a step's own, or the check-ins'."""

    fallbacks: tuple[str, ...] = Field(min_length=1)
    frames: tuple[str, ...] = ()

    @field_validator("fallbacks")
    @classmethod
    def _questions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _all_questions(v, "fallback")

    @field_validator("frames")
    @classmethod
    def _valid_frames(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _frames(v)


class Step(Bank):
    """One question of a protocol; its `fallbacks` and `frames` (from Bank) are its curated follow-ups."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    title: str = Field(min_length=1, max_length=80)
    question: str = Field(min_length=3, max_length=1000)
    hint: str = ""
    options: tuple[str, ...] = ()
    followup: bool = False
    own_reading: bool = False
    section: Literal["what", "so_what", "now_what"] = "what"  # where it goes in an export
    prefer: str = ""  # a regular expression: clauses that match are quoted back first
    literature_themes: tuple[str, ...] = ()  # card themes that speak to this step's answer
    choices: dict[str, tuple[str, ...]] = {}  # questions about each option, asked after its button

    @field_validator("prefer")
    @classmethod
    def _valid_prefer(cls, v: str) -> str:
        return compiles((v,))[0]

    @model_validator(mode="after")
    def _choices_match_options(self) -> "Step":
        for label, questions in self.choices.items():
            if label not in self.options:
                raise ValueError(f"choices: {label!r} is not one of this step's options {list(self.options)}")
            if not questions:
                raise ValueError(f"choices: {label!r} needs at least one question")
            # The name of what is checked, for the start-up error (a message for whoever edits the file).
            _all_questions(questions, "choice question for " + repr(label))
        return self


class Protocol(_Strict):
    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    intro: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "Protocol":
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice; give each step its own id")
            seen.add(step.id)
        return self

    def index_of(self, step_id: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.id == step_id)


class Week(_Strict):
    title: str = Field(min_length=1, max_length=80)
    checkin: str = Field(min_length=3)
    questions: tuple[str, ...] = Field(min_length=2, max_length=3)
    mentor: str = Field(min_length=3)

    @field_validator("questions")
    @classmethod
    def _are_questions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _all_questions(v, "question")


class Programme(_Strict):
    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    intro: str = ""
    weeks: tuple[Week, ...] = Field(min_length=1)


class QuoteRules(_Strict):
    min_words: int = Field(ge=1)
    max_words: int = Field(ge=2)
    never: tuple[str, ...] = ()
    weighty: tuple[str, ...] = ()

    @field_validator("never")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return compiles(v)


class FollowupRules(_Strict):
    """prompts/followups.toml: the check-in follow-up bank and what is never quoted back."""

    checkin: Bank
    quote: QuoteRules


class CommandText(_Strict):
    """How a command is shown: prompts/commands.toml."""

    usage: str = Field(pattern=r"^/[a-z][a-z0-9_]{0,31}( .*)?$")
    help: str = Field(min_length=1, max_length=200)
    menu: str = Field(min_length=3, max_length=256)  # Telegram's limits for a command's description


def checkin_protocol(programme: Programme, week: int, bank: Bank, messages: dict[str, str]) -> Protocol:
    """A week's check-in as a reflection protocol: its questions, with follow-ups, in order."""
    w = programme.weeks[week - 1]
    sections = ("what", "so_what", "now_what")
    steps = tuple(Step(id=f"q{i + 1}", title=messages["checkin_question_title"].format(number=i + 1), question=q,
                       followup=True, own_reading=i == 0, section=sections[min(i, 2)],
                       fallbacks=bank.fallbacks, frames=bank.frames)
                  for i, q in enumerate(w.questions))
    return Protocol(name=f"checkin:{programme.name}:{week}",
                    title=messages["checkin_title"].format(week=week, title=w.title), intro=w.checkin, steps=steps)


class GuardLimits(_Strict):
    min_chars: int = Field(ge=1)
    max_chars: int = Field(ge=1)
    max_words: int = Field(default=200, ge=1)


class GuardRules(_Strict):
    judging: tuple[str, ...]
    common_capitalised: tuple[str, ...]
    roles: tuple[str, ...] = ()
    followup: GuardLimits
    summary: GuardLimits


# The model's tasks, each with its template in prompts/templates/TASK.toml.
TEMPLATE_TASKS = ("followup", "followup_adapter", "summary")


class Template(_Strict):
    stop: tuple[str, ...] = ()
    completion: str = Field(min_length=1)
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)


# Every message key the engine uses, with the placeholders it fills.
MESSAGE_KEYS: dict[str, set[str]] = {
    "welcome": {"name"}, "privacy": {"data_dir"}, "unknown_command": {"command"}, "empty": set(), "binary": set(),
    "too_long": {"length", "limit"}, "note_saved": {"number"}, "note_saved_with_pending": {"number", "started"},
    "note_usage": set(), "model_unavailable": set(), "no_entries": set(), "journal_header": set(),
    "journal_more": {"shown", "total"}, "not_found": {"number"}, "number_usage": {"command"},
    "delete_confirm": {"label", "number"}, "deleted": {"number"}, "delete_kept": {"number"},
    "edit_which": {"number"}, "edit_prompt": {"current", "field"}, "edit_tags_prompt": {"current"},
    "edited": {"number"}, "edit_cancelled": set(), "search_usage": set(), "search_none": {"query"},
    "search_header": {"query"}, "search_why_words": {"words"}, "search_why_meaning": {"passage"},
    "search_bad_date": {"date"}, "insights_usage": set(), "insights_bad_date": {"date"},
    "insights_nothing_shared": set(), "insights_none_since": {"since"}, "insights_header": {"count"},
    "insights_header_since": {"count", "since"}, "insights_nothing_to_count": set(), "insights_approaches": {"items"},
    "insights_levels": {"items"}, "insights_stances": {"items"}, "insights_stances_over_time": {"rows"},
    "insights_themes": {"items"}, "insights_people": {"items"}, "insights_next_steps": {"count", "taken"},
    "insights_step_taken": {"number", "step", "later", "words"}, "insights_step_open": {"number", "step"},
    "insights_item": {"label", "count", "numbers"}, "insights_numbers_more": {"numbers", "more"},
    "insights_period_row": {"period", "counts"}, "insights_unit_month": set(), "insights_unit_week": set(),
    "insights_chart_approaches": {"unit"}, "insights_chart_themes": {"unit"}, "insights_chart_y": set(),
    "insights_chart_alt": {"title", "rows"}, "insights_chart_file": {"what", "date"},
    "insights_keep_button": set(), "insights_kept": {"number"}, "nothing_to_resume": set(), "nothing_to_cancel": set(), "cancelled": set(),
    "resume_or_restart": {"started", "step", "total"}, "pending_at_start": {"started", "step", "total"},
    "not_in_reflection": {"command"}, "summary_proposal": {"summary", "tags"},
    "summary_own_part": set(), "summary_edit_prompt": set(),
    "tags_updated": {"tags"}, "reflection_saved": {"number"}, "literature": {"citation", "idea", "title"},
    "choose_option": set(), "error": set(), "not_saved": set(), "not_saved_disk_full": set(),
    "access_removed": set(), "onboarding": {"name"}, "onboarding_timezone": {"zone"},
    "timezone_current": {"zone"}, "timezone_set": {"zone"}, "timezone_unknown": {"zone"}, "timezone_other": set(),
    "edited_message": set(), "sticker_received": set(), "photo_received": set(), "voice_received": set(),
    "document_received": set(), "unsupported_media": set(), "stranger": set(), "invite_invalid": set(),
    "group_left": set(), "queue_wait": {"ahead"}, "sharing_unavailable": set(), "share_no_readers": set(),
    "share_who": {"number"}, "share_scope": set(), "share_preview": {"content"},
    "share_cancelled": set(), "shared_done": {"number"}, "unshared": {"number"}, "not_shared": {"number"},
    "nothing_shared": set(), "shared_header": set(), "access_none": set(), "access_header": set(),
    "supervisors_only": set(), "team_empty": set(), "team_header": set(), "review_empty": set(),
    "review_header": set(), "not_shared_with_you": set(), "comment_from_supervisor": {"name", "number", "text"},
    "comment_from_author": {"name", "number", "text"}, "export_ready": {"count"}, "export_json": set(),
    "forget_first": set(), "forget_second": set(), "forget_kept": set(), "forgotten": set(),
    "checkins_unavailable": set(), "checkins_programme": {"title", "week", "weeks"},
    "checkins_schedule": {"schedule"}, "checkins_none": set(), "checkins_help": set(), "checkins_usage": set(),
    "bad_day": {"day"}, "bad_time": {"time"}, "checkins_set": {"schedule"}, "reminder_set": {"schedule"},
    "reminder_off": set(), "reminder_current": {"schedule"}, "reminder_usage": set(), "no_programme": set(),
    "programme_done": set(), "snooze_usage": set(), "nothing_to_snooze": set(), "snoozed": {"until"},
    "week_skipped": {"week"}, "pause_usage": set(), "paused": set(), "paused_until": {"until"},
    "checkins_resumed": set(), "no_mentees": set(), "mentees_header": set(), "note_from_mentor": {"name", "text"},
    "reply_prompt": {"name"}, "checkin_message": {"checkin", "mentor", "week", "weeks"}, "reminder_message": set(),
    "digest_message": {"lines"}, "paired_mentee": {"intro", "mentor", "schedule", "title"},
    "paired_mentor": {"mentee", "title"}, "help_header": set(), "help_also": set(), "help_line": {"help", "usage"},
    "invite_accepted": {"role"}, "privacy_nothing_shared": set(), "privacy_shared": set(),
    "privacy_mentor": {"mentor"}, "forwarded_note": {"text"}, "button_skip": set(), "button_back": set(),
    "button_save": set(), "button_edit_summary": set(), "button_go_on": set(), "button_start_again": set(),
    "button_drop_reflection": set(), "button_keep_reflection": set(), "button_other_timezone": set(),
    "button_delete_yes": set(), "button_delete_no": set(), "button_reader": {"name", "role"},
    "button_scope_summary": set(), "button_scope_full": set(), "button_labels_yes": set(),
    "button_labels_no": set(), "button_share_yes": set(), "button_share_no": set(), "button_read": set(),
    "button_read_item": {"name", "number"}, "button_comment": set(), "button_answer": set(), "button_reply": set(),
    "button_forget_first": set(), "button_forget_second": set(), "button_forget_no": set(),
    "button_checkin_start": set(), "button_checkin_snooze": set(), "button_checkin_skip": set(),
    "button_checkin_now": set(), "button_reflect_now": set(), "none": set(), "nobody": set(), "empty_text": set(),
    "skipped": set(), "not_yet": set(), "you": set(), "label_person": set(), "label_organisation": set(),
    "scope_summary": set(), "scope_full": set(), "kind_reflection": set(), "kind_note": set(),
    "kind_checkin": {"week"}, "day_names": set(), "step_question": {"question", "step", "total"},
    "step_answer_before": {"answer"}, "summary_all_skipped": set(), "cancel_confirm": {"started", "step", "total"},
    "cancel_kept": set(), "journal_line": {"kind", "label", "number", "tags", "when"},
    "journal_line_tags": {"tags"}, "show_header": {"kind", "number", "when"}, "show_summary": {"summary"},
    "show_tags": {"tags"}, "show_idea": {"idea"}, "field_note": set(), "field_summary": set(), "field_tags": set(),
    "thread_header": set(), "thread_line": {"name", "text", "when"}, "thread_reply_hint": {"number"},
    "shared_line": {"number", "reader", "role", "scope", "since"},
    "access_line": {"name", "number", "role", "when"}, "team_line": {"count", "name"},
    "review_line": {"name", "number", "scope", "since"}, "read_header": {"name", "number"},
    "shared_with_you": {"name", "number", "scope"}, "supervisor_linked": {"supervisor"},
    "supervisee_linked": {"spanner"}, "reply_sent": {"name"}, "reply_nothing": set(),
    "reply_no_thread": {"number"}, "reply_closed": set(), "note_from_mentee": {"name", "text"},
    "note_not_a_mentee": {"mentees", "name"}, "schedule": {"at", "days", "state", "zone"},
    "schedule_next": {"next"}, "schedule_paused": set(), "schedule_paused_until": {"until"},
    "paused_suffix": set(), "mentee_line": {"answered", "last", "name", "paused", "skipped", "week", "weeks"},
    "mentees_footer": set(), "digest_line": {"answered", "change", "name", "paused", "week", "weeks"},
    "digest_change": {"answered", "skipped"}, "digest_no_change": set(), "export_file_name": {"date"}, "export_title": set(),
    "export_intro": {"count", "when"}, "export_entry": {"kind", "number", "when"}, "export_what": set(),
    "export_so_what": set(), "export_now_what": set(), "export_summary": {"summary"}, "export_tags": {"tags"},
    "export_idea": {"idea"}, "export_sharing": set(), "export_share_line": {"number", "role", "scope", "since"},
    "export_comment_line": {"number", "text", "when", "who"}, "export_read_line": {"number", "role", "when"},
    "export_notes": set(), "export_note_line": {"text", "when", "who"}, "checkin_title": {"title", "week"},
    "checkin_question_title": {"number"},
    # Safe sharing and portfolio exports (deidentify.py, portfolio_commands.py).
    "deid_found": {"kinds"}, "deid_none": set(), "incident_line": set(), "deid_changes": {"count"},
    "deid_change_line": {"n", "original", "label"}, "deid_kept_line": {"n", "original"}, "button_undo": {"n"},
    "button_redo": {"n"}, "label_place": set(),
    **{f"deid_kind_{k}": set() for k in ("person", "organisation", "place", "nhs_number", "ni_number", "postcode",
                                          "phone", "date_of_birth", "ward", "bed", "email")},
    **{f"deid_label_{k}": set() for k in ("nhs_number", "ni_number", "postcode", "phone", "date_of_birth", "ward",
                                           "bed", "email")},
    "portfolio_usage": {"formats"}, "portfolio_bad_date": {"text"}, "portfolio_nothing": set(),
    "portfolio_theme": {"n", "total", "number", "date"}, "button_theme": {"mark", "theme"}, "button_next": set(),
    "portfolio_ready": {"count", "title"}, "button_make": set(), "button_make_ai": set(), "button_make_no": set(),
    "portfolio_done": {"count"}, "portfolio_pdf": set(), "portfolio_cancelled": set(),
    "portfolio_file_name": {"format", "date"}, "portfolio_period": {"start", "end", "today"},
    "portfolio_start": set(), "portfolio_empty_field": set(), "portfolio_no_theme": set(),
    "portfolio_gaps_heading": {"months"}, "portfolio_gap_line": {"start", "end"}, "portfolio_no_gaps": {"months"},
    "portfolio_ai_heading": set(), "portfolio_ai_note": set(),
}


@dataclass(frozen=True)
class PromptData:
    """Everything loaded from prompts/, validated."""

    protocols: dict[str, Protocol]
    messages: dict[str, str]
    guard: GuardRules
    templates: dict[str, Template]
    programmes: dict[str, Programme]
    safety: SafetyRules
    followups: FollowupRules
    commands: dict[str, CommandText]
    commands_file: str = "prompts/commands.toml"  # where the commands' words came from, for error messages
    deidentify: DeidRules | None = None  # prompts/deidentify.toml
    exports: dict[str, ExportFormat] = field(default_factory=dict)  # prompts/exports/*.toml, by name

    def say(self, key: str, **values: object) -> str:
        return self.messages[key].format(**values)

    def known_questions(self) -> tuple[str, ...]:
        """Questions a generated follow-up must not parrot: the steps' own and the templates' examples."""
        steps = [s.question for p in self.protocols.values() for s in p.steps]
        examples = [line.split(":", 1)[1] for t in self.templates.values()
                    for line in t.completion.splitlines()
                    if line.startswith(("Question:", "Summary:")) and line.split(":", 1)[1].strip()]
        return tuple(steps + examples)


def _line_of(text: str, loc: tuple) -> int | None:
    """Best guess at the line a validation error points to, so the fix is easy to find."""
    lines = text.splitlines()
    if len(loc) >= 2 and isinstance(loc[1], int):
        table, index = str(loc[0]), loc[1]
        headers = [i for i, ln in enumerate(lines) if ln.strip() == f"[[{table}]]"]
        if index < len(headers):
            start = headers[index]
            end = headers[index + 1] if index + 1 < len(headers) else len(lines)
            if len(loc) >= 3:
                key = str(loc[2])
                for i in range(start, end):
                    if re.match(rf"\s*{re.escape(key)}\s*=", lines[i]):
                        return i + 1
            return start + 1
    if loc:
        key = str(loc[-1] if not isinstance(loc[-1], int) else loc[0])
        for i, ln in enumerate(lines):
            if re.match(rf"\s*{re.escape(key)}\s*=", ln):
                return i + 1
    return None


def _line_in_table(text: str, table: str, key: str) -> int:
    """The line of `key` under [table] (or of the table itself), for an error message."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == f"[{table}]"), 0)
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[i]):
            return i + 1
    return start + 1


def _load_toml(path: Path) -> tuple[dict, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptDataError(f"{path}: file not found; fix: restore it from the repository") from None
    except UnicodeDecodeError:
        raise PromptDataError(f"{path}: not UTF-8 text; fix: save it as UTF-8") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise PromptDataError(f"{path}: {exc}; fix: correct the TOML on that line") from None


def _validate(model: type[BaseModel], path: Path, data: dict, text: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = _line_of(text, loc)
        where = f"line {line}" if line else "top"
        key = ".".join(str(p) for p in loc) or "(file)"
        msg = err["msg"].removeprefix("Value error, ")
        fix = "remove it or check the spelling" if err["type"] == "extra_forbidden" else \
            "add it" if err["type"] == "missing" else "see the comments at the top of the file"
        raise PromptDataError(f"{path}: {where}: {key}: {msg}; fix: {fix}") from None


def _placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def load_prompt_data(prompts_dir: Path) -> PromptData:
    """Load and check every file in prompts/. Raises PromptDataError on the first problem."""
    prompts_dir = Path(prompts_dir)
    protocols: dict[str, Protocol] = {}
    for path in sorted((prompts_dir / "reflection").glob("*.toml")):
        data, text = _load_toml(path)
        proto = _validate(Protocol, path, data, text)
        if proto.name != path.stem:
            raise PromptDataError(
                f"{path}: line {_line_of(text, ('name',)) or 1}: name {proto.name!r} differs from the "
                f"file name; fix: set name = \"{path.stem}\"")
        protocols[proto.name] = proto
    if not protocols:
        raise PromptDataError(f"{prompts_dir / 'reflection'}: no protocol files; fix: restore after_meeting.toml")

    mpath = prompts_dir / "messages.toml"
    messages, mtext = _load_toml(mpath)
    for key, needed in MESSAGE_KEYS.items():
        if key not in messages or not isinstance(messages[key], str):
            raise PromptDataError(f"{mpath}: {key}: missing; fix: add {key} = \"...\"")
        try:
            found = _placeholders(messages[key])
        except ValueError as exc:
            raise PromptDataError(f"{mpath}: line {_line_of(mtext, (key,))}: {key}: {exc}; "
                                  "fix: write a literal brace as {{ or }}") from None
        unknown = found - needed
        if unknown:
            raise PromptDataError(
                f"{mpath}: line {_line_of(mtext, (key,))}: {key}: unknown placeholder "
                f"{{{sorted(unknown)[0]}}}; fix: use only {sorted(needed) or 'no placeholders'}")

    gpath = prompts_dir / "guard.toml"
    gdata, gtext = _load_toml(gpath)
    guard = _validate(GuardRules, gpath, gdata, gtext)

    fpath = prompts_dir / "followups.toml"
    fdata, ftext = _load_toml(fpath)
    followups = _validate(FollowupRules, fpath, fdata, ftext)

    programmes: dict[str, Programme] = {}
    for path in sorted((prompts_dir / "programmes").glob("*.toml")):
        data, text = _load_toml(path)
        programme = _validate(Programme, path, data, text)
        if programme.name != path.stem:
            raise PromptDataError(f"{path}: line {_line_of(text, ('name',)) or 1}: name {programme.name!r} "
                                  f"differs from the file name; fix: set name = \"{path.stem}\"")
        programmes[programme.name] = programme
        for week in range(1, len(programme.weeks) + 1):
            proto = checkin_protocol(programme, week, followups.checkin, messages)
            protocols[proto.name] = proto

    cpath = prompts_dir / "commands.toml"
    cdata, ctext = _load_toml(cpath)
    commands: dict[str, CommandText] = {}
    for name, table in cdata.items():
        if not isinstance(table, dict):
            raise PromptDataError(f"{cpath}: line {_line_of(ctext, (name,)) or 1}: {name}: not a table; "
                                  f"fix: write [{name}] with usage, help and menu under it")
        try:
            text = CommandText.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise PromptDataError(f"{cpath}: line {_line_in_table(ctext, name, field)}: [{name}] {field}: "
                                  f"{err['msg']}; fix: give [{name}] a usage, a help line and a menu text") from None
        if text.usage.split()[0] != f"/{name}":
            raise PromptDataError(f"{cpath}: [{name}]: usage {text.usage!r} does not start with /{name}; "
                                  f"fix: begin it with /{name}")
        commands[name] = text

    templates: dict[str, Template] = {}
    for task in TEMPLATE_TASKS:
        tpath = prompts_dir / "templates" / f"{task}.toml"
        tdata, ttext = _load_toml(tpath)
        templates[task] = _validate(Template, tpath, tdata, ttext)
    safety = load_safety(prompts_dir, _load_toml, _validate)
    deidentify = load_deid(prompts_dir, _load_toml, _validate)
    step_ids = {s.id for p in protocols.values() for s in p.steps}
    exports = load_formats(prompts_dir, _load_toml, _validate, step_ids, PromptDataError)
    return PromptData(protocols=protocols, messages={k: str(v) for k, v in messages.items()},
                      guard=guard, templates=templates, programmes=programmes, safety=safety,
                      followups=followups, commands=commands, commands_file=str(cpath),
                      deidentify=deidentify, exports=exports)
