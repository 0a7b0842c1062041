"""Building a person's export: Markdown to read (What / So what / Now what) and JSON to process.

Only what the person gave and what was said to them: their entries, their
shares (readers named by role, not by name), comments on their entries, and
who read them when (by role). The JSON layout is documented in
docs/export-schema.json and checked against it in the tests.
"""

from __future__ import annotations

import json
from datetime import datetime

from .prompt_data import Protocol
from .records import Entry

SCHEMA = "spanner-export/1"
SECTIONS = (("what", "What?"), ("so_what", "So what?"), ("now_what", "Now what?"))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _section_of(step_id: str, protocols: dict[str, Protocol], protocol: str) -> str:
    proto = protocols.get(protocol)
    if proto:
        for step in proto.steps:
            if step.id == step_id:
                return step.section
    return "what"


def build_json(user: str, role: str, timezone: str, entries: list[Entry], shares: list, comments: list,
               reads: list, protocols: dict[str, Protocol], now: datetime) -> dict:
    return {
        "schema": SCHEMA,
        "exported_at": now.isoformat(),
        "person": {"handle": user, "role": role, "timezone": timezone},
        "entries": [{
            "number": e.number, "kind": e.kind, "protocol": e.protocol or None,
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
    }


def build_markdown(data: dict, tz) -> str:
    def when(iso: str | None) -> str:
        return datetime.fromisoformat(iso).astimezone(tz).strftime("%d %b %Y %H:%M") if iso else ""

    lines = [f"# Your Spanner journal", "", f"Exported {when(data['exported_at'])}. "
             f"{len(data['entries'])} entries. The JSON file has the same content for machines.", ""]
    for e in sorted(data["entries"], key=lambda x: x["number"]):
        kind = "Reflection" if e["kind"] == "reflection" else "Quick note"
        lines += [f"## #{e['number']} · {kind} · {when(e['created_at'])}", ""]
        if e["note"]:
            lines += [e["note"], ""]
        for key, heading in SECTIONS:
            answers = [a for a in e["answers"] if a["section"] == key]
            if not answers:
                continue
            lines += [f"### {heading}", ""]
            for a in answers:
                lines.append(f"**{a['question']}**")
                lines.append("(skipped)" if a["skipped"] else a["answer"])
                if a["followup_question"]:
                    lines.append(f"*{a['followup_question']}* {a['followup_answer'] or '(skipped)'}")
                lines.append("")
        if e["summary"]:
            lines += [f"**Summary:** {e['summary']}", ""]
        if e["tags"]:
            lines += [f"**Tags:** {', '.join(e['tags'])}", ""]
        if e["idea_offered"]:
            lines += [f"**Idea offered:** {e['idea_offered']}", ""]
    if data["shares"] or data["comments"] or data["reads"]:
        lines += ["## Sharing", ""]
        lines += [f"- #{s['entry']} shared with your {s['reader_role']} ({s['scope']}) since {when(s['since'])}"
                  for s in data["shares"]]
        lines += [f"- Comment on #{c['entry']} from {c['from']}, {when(c['at'])}: {c['text']}"
                  for c in data["comments"]]
        lines += [f"- #{r['entry']} read by your {r['reader_role']} on {when(r['at'])}" for r in data["reads"]]
        lines.append("")
    return "\n".join(lines)


def to_bytes(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
