"""A portfolio for a regulator, built from a person's reflections: one plain Document, two renderings.

A format (prompts/exports/*.toml) names the form's fields and the reflection
steps that fill each one. `build` maps entries onto it and returns a Document
(headings, labelled fields, lines); `markdown` writes it as Markdown here, and
the FormPrinter port lays the same Document out as a PDF form, so the two hold
the same words. HCPC's gap check (three months or more without an activity)
is `gaps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Sequence

from .export_formats import ExportFormat
from .prompt_data import Protocol
from .records import Entry


@dataclass(frozen=True)
class FormBox:
    label: str
    text: str


@dataclass(frozen=True)
class Section:
    heading: str
    boxes: tuple[FormBox, ...] = ()
    lines: tuple[str, ...] = ()
    level: int = 2


@dataclass(frozen=True)
class Document:
    title: str
    intro: tuple[str, ...]
    sections: tuple[Section, ...]


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)


def gaps(days: Sequence[date], start: date | None, end: date | None, months: int) -> list[tuple[date, date]]:
    """Every stretch of `months` months or more with no activity, within the period asked for."""
    points = sorted(days)
    if not points or months <= 0:
        return []
    edges = [start or points[0]] + points + [end or points[-1]]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b >= add_months(a, months)]


def in_period(entries: Sequence[Entry], start: date | None, end: date | None, tz) -> list[Entry]:
    """Entries written between the two days (local time, both included), oldest first."""
    def day(e: Entry) -> date:
        return e.created_at.astimezone(tz).date()
    return sorted((e for e in entries if (start is None or day(e) >= start) and (end is None or day(e) <= end)),
                  key=lambda e: (e.created_at, e.number))


def _step_titles(protocols: dict[str, Protocol], protocol: str) -> dict[str, str]:
    proto = protocols.get(protocol)
    return {s.id: s.title for s in proto.steps} if proto else {}


def field_texts(fmt: ExportFormat, entry: Entry, protocols: dict[str, Protocol]) -> dict[str, list[str]]:
    """For each answers-field of the form, the paragraphs that fill it from this entry."""
    titles = _step_titles(protocols, entry.protocol)
    named = {s for f in fmt.fields for s in f.steps}
    out: dict[str, list[str]] = {}
    for f in fmt.fields:
        if f.source != "answers":
            continue
        parts: list[str] = []
        for step in f.steps:
            if step in ("note", "summary", "title"):
                value = getattr(entry, step)
                if value and not (step == "title" and entry.answers):
                    parts.append(value)
                continue
            parts += _answers(entry, lambda a: a.step_id == step, titles)
        if f.rest:
            parts += _answers(entry, lambda a: a.step_id not in named, titles)
        out[f.id] = parts
    return out


def _answers(entry: Entry, pick: Callable, titles: dict[str, str]) -> list[str]:
    parts = []
    for a in entry.answers:
        if not pick(a) or a.skipped or not a.answer.strip():
            continue
        title = titles.get(a.step_id) or a.question
        text = f"{title}: {a.answer}"
        if a.followup_question and a.followup_answer:
            text += f" ({a.followup_question} {a.followup_answer})"
        parts.append(text)
    return parts


def build(fmt: ExportFormat, entries: Sequence[Entry], protocols: dict[str, Protocol], say: Callable[..., str],
          tz, period: tuple[date | None, date | None], today: datetime, themes: dict[int, list[int]],
          ai_note: bool) -> Document:
    """The portfolio: the format's form once per entry, then its gap check, skeleton and AI-use note."""
    def day(d: date) -> str:
        return d.strftime("%d %b %Y")

    start, end = period
    first = start or (entries[0].created_at.astimezone(tz).date() if entries else today.date())
    intro = [fmt.intro] if fmt.intro else []
    intro.append(say("portfolio_period", start=day(first) if start else say("portfolio_start"),
                     end=day(end or today.astimezone(tz).date()), today=day(today.astimezone(tz).date())))
    sections: list[Section] = []
    for n, entry in enumerate(entries, 1):
        texts = field_texts(fmt, entry, protocols)
        boxes = []
        for f in fmt.fields:
            if f.source == "themes":
                chosen = [fmt.themes[i] for i in themes.get(entry.number, []) if i < len(fmt.themes)]
                text = "; ".join(chosen) or say("portfolio_no_theme")
            elif f.source == "author":
                text = f.hint or say("portfolio_empty_field")
            else:
                text = "\n\n".join(texts[f.id]) or say("portfolio_empty_field")
            boxes.append(FormBox(f.label, text))
        heading = fmt.record.format(n=n, number=entry.number, date=day(entry.created_at.astimezone(tz).date()))
        sections.append(Section(heading, tuple(boxes)))
    if fmt.gap_months:
        found = gaps([e.created_at.astimezone(tz).date() for e in entries], start, end, fmt.gap_months)
        lines = tuple(say("portfolio_gap_line", start=day(a), end=day(b)) for a, b in found) or \
            (say("portfolio_no_gaps", months=fmt.gap_months),)
        sections.append(Section(say("portfolio_gaps_heading", months=fmt.gap_months), lines=lines))
    sections += [Section(s.heading, lines=(s.text,)) for s in fmt.skeleton]
    if ai_note:
        sections.append(Section(say("portfolio_ai_heading"), lines=(say("portfolio_ai_note"),)))
    return Document(fmt.title, tuple(intro), tuple(sections))


def markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    for paragraph in doc.intro:
        lines += [paragraph, ""]
    for section in doc.sections:
        lines += ["#" * section.level + " " + section.heading, ""]
        for box in section.boxes:
            lines += [f"**{box.label}**", "", box.text, ""]
        for line in section.lines:
            lines += [line, ""]
    return "\n".join(lines)
