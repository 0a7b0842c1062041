"""Building a person's export: Markdown to read (What / So what / Now what) and JSON to process.

Only what the person gave and what was said to them: their entries, their
shares (readers named by role, not by name), comments on their entries, notes
with their mentor, and who read them when (by role). The JSON layout is
documented in docs/export-schema.json and checked against it in the tests; the
Markdown's words come from prompts/messages.toml (keys starting export_).
"""

from __future__ import annotations

import json
from datetime import datetime

from typing import Callable

from .prompt_data import Protocol
from .records import Entry

SCHEMA = "spanner-export/1"
SECTIONS = ("what", "so_what", "now_what")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _section_of(step_id: str, protocols: dict[str, Protocol], protocol: str) -> str:
    proto = protocols.get(protocol)
    if proto:
        for step in proto.steps:
            if step.id == step_id:
                return step.section
    return "what"


def build_json(user: str, roles: tuple[str, ...], timezone: str, entries: list[Entry], shares: list,
               comments: list, reads: list, notes: list, protocols: dict[str, Protocol], now: datetime) -> dict:
    return {
        "schema": SCHEMA,
        "exported_at": now.isoformat(),
        "person": {"handle": user, "role": roles[0], "roles": list(roles), "timezone": timezone},
        "entries": [{
            "number": e.number, "kind": e.kind, "protocol": e.protocol or None, "week": e.week,
            "created_at": _iso(e.created_at), "updated_at": _iso(e.updated_at),
            "title": e.title, "note": e.note, "summary": e.summary, "tags": list(e.tags),
            "idea_offered": e.suggestion or None,
            "answers": [{"step": a.step_id, "section": _section_of(a.step_id, protocols, e.protocol),
                         "question": a.question, "answer": a.answer, "skipped": a.skipped,
                         "followup_question": a.followup_question or None,
                         "followup_answer": a.followup_answer or None} for a in e.answers],
        } for e in entries],
        "shares": [{"entry": s.number, "reader_role": s.reader_role, "scope": s.scope,
                    "since": _iso(s.since)} for s in shares],
        "comments": [{"entry": number, "from": who, "text": text, "at": _iso(when)}
                     for number, who, text, when in comments],
        "reads": [{"entry": number, "reader_role": role_, "at": _iso(when)} for _name, role_, number, when in reads],
        "notes": [{"from": "you" if mine else "mentor", "text": text, "at": _iso(when)}
                  for _name, mine, text, when in notes],
    }


def build_markdown(data: dict, tz, say: Callable[..., str]) -> str:
    """The same content to read; `say` gives the words (prompts/messages.toml)."""
    def when(iso: str | None) -> str:
        return datetime.fromisoformat(iso).astimezone(tz).strftime("%d %b %Y %H:%M") if iso else ""

    lines = [say("export_title"), "", say("export_intro", when=when(data["exported_at"]),
                                           count=len(data["entries"])), ""]
    for e in sorted(data["entries"], key=lambda x: x["number"]):
        kind = say("kind_checkin", week=e["week"]) if e["week"] else \
            say("kind_reflection" if e["kind"] == "reflection" else "kind_note")
        lines += [say("export_entry", number=e["number"], kind=kind, when=when(e["created_at"])), ""]
        if e["note"]:
            lines += [e["note"], ""]
        for key in SECTIONS:
            answers = [a for a in e["answers"] if a["section"] == key]
            if not answers:
                continue
            lines += [say(f"export_{key}"), ""]
            for a in answers:
                lines.append(f"**{a['question']}**")
                lines.append(say("skipped") if a["skipped"] else a["answer"])
                if a["followup_question"]:
                    lines.append(f"*{a['followup_question']}* {a['followup_answer'] or say('skipped')}")
                lines.append("")
        if e["summary"]:
            lines += [say("export_summary", summary=e["summary"]), ""]
        if e["tags"]:
            lines += [say("export_tags", tags=", ".join(e["tags"])), ""]
        if e["idea_offered"]:
            lines += [say("export_idea", idea=e["idea_offered"]), ""]
    if data["shares"] or data["comments"] or data["reads"]:
        lines += [say("export_sharing"), ""]
        lines += [say("export_share_line", number=s["entry"], role=s["reader_role"], scope=s["scope"],
                      since=when(s["since"])) for s in data["shares"]]
        lines += [say("export_comment_line", number=c["entry"], who=c["from"], when=when(c["at"]), text=c["text"])
                  for c in data["comments"]]
        lines += [say("export_read_line", number=r["entry"], role=r["reader_role"], when=when(r["at"]))
                  for r in data["reads"]]
        lines.append("")
    if data["notes"]:
        lines += [say("export_notes"), ""]
        lines += [say("export_note_line", who=n["from"], when=when(n["at"]), text=n["text"]) for n in data["notes"]]
        lines.append("")
    return "\n".join(lines)


def to_bytes(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
