"""Sharing by choice, supervision, the access log, export and "forget me".

Nothing is shared by default. /share walks the author through who, how much,
and whether to replace names, then shows exactly what will be seen before it
goes. Supervisors reach shared entries only through the Sharing port, whose
single check admits active shares addressed to them.
"""

from __future__ import annotations

from dataclasses import replace

from .context import Context
from .export import build_json, build_markdown, to_bytes
from .inputs import parse_number
from .journal_commands import JournalCommands
from .labels import pseudonymise
from .records import Attachment, Choice, Entry, Reply

READER_ROLES = ("supervisor", "admin")


class SharingCommands:
    def __init__(self, ctx: Context, journal: JournalCommands):
        self.ctx = ctx
        self.journal = journal

    @property
    def port(self):
        return self.ctx.sharing

    def _unavailable(self) -> list[Reply]:
        return [Reply(self.ctx.say("sharing_unavailable"))]

    # ----- the author's side ----------------------------------------------------------------

    def content(self, entry: Entry, scope: str, labelled: bool) -> str:
        if labelled:
            entry = self._labelled(entry)
        if scope == "summary":
            return entry.summary or entry.note or entry.title
        return self.journal.show_text(entry)

    def _labelled(self, entry: Entry) -> Entry:
        """The same entry with names replaced in what the user wrote (never in our own questions)."""
        common = {w.lower() for w in self.ctx.prompts.guard.common_capitalised}
        own_words = " ".join([entry.note, entry.summary] + [a.answer + " " + a.followup_answer
                                                            for a in entry.answers])

        def swap(text: str) -> str:
            return pseudonymise(text, common, context=own_words) if text else text
        return replace(entry, note=swap(entry.note), summary=swap(entry.summary), title=swap(entry.title),
                       tags=[swap(t) for t in entry.tags],
                       answers=[replace(a, answer=swap(a.answer), followup_answer=swap(a.followup_answer))
                                for a in entry.answers])

    def share(self, user: str, args: str, state: dict) -> list[Reply]:
        if self.port is None:
            return self._unavailable()
        number = parse_number(args)
        if number is None:
            return [Reply(self.ctx.say("number_usage", command="/share"))]
        entry = self.ctx.journal.get_entry(user, number)
        if entry is None:
            return [Reply(self.ctx.say("not_found", number=number))]
        readers = self.port.readers_for(user)
        if not readers:
            return [Reply(self.ctx.say("share_no_readers"))]
        state["pending"] = {"action": "share", "number": number, "readers": [r.handle for r in readers]}
        if len(readers) == 1:
            return self._choose(user, "reader:0", state)
        return [Reply(self.ctx.say("share_who", number=number),
                      tuple(Choice(f"{r.name} ({r.role})", f"share:reader:{i}") for i, r in enumerate(readers)))]

    def _choose(self, user: str, step: str, state: dict) -> list[Reply]:
        pending = state.get("pending") or {}
        if pending.get("action") != "share":
            return [Reply(self.ctx.say("choose_option"))]
        kind, _, value = step.partition(":")
        if kind == "reader" and value.isdigit() and int(value) < len(pending["readers"]):
            pending["reader"] = pending["readers"][int(value)]
            return [Reply(self.ctx.say("share_scope"), (Choice("Summary only", "share:scope:summary"),
                                                        Choice("Whole entry", "share:scope:full")))]
        if kind == "scope" and value in ("summary", "full") and "reader" in pending:
            pending["scope"] = value
            return [Reply(self.ctx.say("share_labels"), (Choice("Replace names with labels", "share:labels:yes"),
                                                         Choice("Keep names", "share:labels:no")))]
        if kind == "labels" and value in ("yes", "no") and "scope" in pending:
            pending["labelled"] = value == "yes"
            entry = self.ctx.journal.get_entry(user, pending["number"])
            if entry is None:
                state.pop("pending", None)
                return [Reply(self.ctx.say("not_found", number=pending["number"]))]
            return [Reply(self.ctx.say("share_preview", content=self.content(entry, pending["scope"],
                                                                              pending["labelled"])),
                          (Choice("Share it", "share:confirm:yes"), Choice("Cancel", "share:confirm:no")))]
        if kind == "confirm" and "labelled" in pending:
            state.pop("pending", None)
            if value != "yes":
                return [Reply(self.ctx.say("share_cancelled"))]
            entry = self.ctx.journal.get_entry(user, pending["number"])
            if entry is None:
                return [Reply(self.ctx.say("not_found", number=pending["number"]))]
            self.port.share(user, entry.number, pending["reader"], pending["scope"], pending["labelled"],
                            self.content(entry, pending["scope"], pending["labelled"]))
            return [Reply(self.ctx.say("shared_done", number=entry.number))]
        return [Reply(self.ctx.say("choose_option"))]

    def on_choice(self, user: str, data: str, state: dict) -> list[Reply]:
        return self._choose(user, data.removeprefix("share:"), state)

    def unshare(self, user: str, args: str) -> list[Reply]:
        if self.port is None:
            return self._unavailable()
        number = parse_number(args)
        if number is None:
            return [Reply(self.ctx.say("number_usage", command="/unshare"))]
        count = self.port.unshare(user, number)
        return [Reply(self.ctx.say("unshared" if count else "not_shared", number=number))]

    def shared(self, user: str) -> list[Reply]:
        if self.port is None:
            return self._unavailable()
        rows = self.port.shares_of(user)
        if not rows:
            return [Reply(self.ctx.say("nothing_shared"))]
        lines = [self.ctx.say("shared_header")]
        lines += [f"#{r.number} with {r.reader} ({r.reader_role}), "
                  f"{'summary only' if r.scope == 'summary' else 'whole entry'}, since {self.ctx.local(r.since)}"
                  for r in rows]
        return [Reply("\n".join(lines))]

    def access(self, user: str) -> list[Reply]:
        if self.port is None:
            return self._unavailable()
        rows = self.port.access_log(user)
        if not rows:
            return [Reply(self.ctx.say("access_none"))]
        lines = [self.ctx.say("access_header")]
        lines += [f"{self.ctx.local(at)}: {name} ({role}) read #{number}" for name, role, number, at in rows[:50]]
        return [Reply("\n".join(lines))]

    # ----- the reader's side ----------------------------------------------------------------

    def _is_reader(self, user: str) -> bool:
        return self.port is not None and self.port.role(user) in READER_ROLES

    def team(self, user: str) -> list[Reply]:
        if not self._is_reader(user):
            return [Reply(self.ctx.say("supervisors_only"))]
        rows = self.port.team(user)
        if not rows:
            return [Reply(self.ctx.say("team_empty"))]
        return [Reply("\n".join([self.ctx.say("team_header")] +
                                [f"{name}: {count} shared with you" for name, count in rows]))]

    def review(self, user: str) -> list[Reply]:
        if not self._is_reader(user):
            return [Reply(self.ctx.say("supervisors_only"))]
        items = self.port.visible(user)
        if not items:
            return [Reply(self.ctx.say("review_empty"))]
        lines = [self.ctx.say("review_header")]
        lines += [f"{item.owner_name}, #{item.number} ({'summary' if item.scope == 'summary' else 'whole entry'}), "
                  f"shared {self.ctx.local(item.since)}" for item in items[:20]]
        choices = tuple(Choice(f"Read {item.owner_name} #{item.number}", f"rv:{item.share_id}") for item in items[:20])
        return [Reply("\n".join(lines), choices)]

    def read(self, user: str, share_id: int) -> list[Reply]:
        item = self.port.read(user, share_id) if self.port is not None else None
        if item is None:
            return [Reply(self.ctx.say("not_shared_with_you"))]
        lines = [f"{item.owner_name}, entry #{item.number}:", "", item.content]
        for who, text, when in item.comments:
            lines.append(f"\n{'You' if who == 'supervisor' else item.owner_name} ({self.ctx.local(when)}): {text}")
        return [Reply("\n".join(lines), (Choice("Comment", f"cm:{share_id}"),))]

    def start_comment(self, user: str, share_id: int, state: dict) -> list[Reply]:
        state["pending"] = {"action": "comment", "share": share_id}
        return [Reply(self.ctx.say("comment_prompt"))]

    def finish_comment(self, user: str, text: str, state: dict) -> list[Reply]:
        pending = state.pop("pending")
        result = self.port.comment(user, pending["share"], text) if self.port is not None else None
        if result is None:
            return [Reply(self.ctx.say("not_shared_with_you"))]
        other, number = result
        from_reader = self.port.role(user) in READER_ROLES and other != user
        key = "comment_from_supervisor" if from_reader else "comment_from_author"
        self.port.notify(other, {"text": self.ctx.say(key, number=number, text=text),
                                 "choices": [["Answer" if from_reader else "Comment", f"cm:{pending['share']}"]]})
        return [Reply(self.ctx.say("comment_sent"))]

    # ----- export and forget ------------------------------------------------------------------

    def export(self, user: str) -> list[Reply]:
        entries = self.ctx.journal.list_entries(user, 1_000_000)
        port = self.port
        data = build_json(user, port.role(user) if port else "spanner",
                          self.ctx.journal.get_timezone(user) or self.ctx.settings.timezone,
                          entries, port.shares_of(user) if port else [],
                          port.comments_for_owner(user) if port else [], port.access_log(user) if port else [],
                          self.ctx.prompts.protocols, self.ctx.now())
        stamp = self.ctx.now().strftime("%Y%m%d")
        return [Reply(self.ctx.say("export_ready", count=len(entries)),
                      attachment=Attachment(f"spanner-journal-{stamp}.md",
                                            build_markdown(data, self.ctx.tz).encode("utf-8"), "text/markdown")),
                Reply(self.ctx.say("export_json"),
                      attachment=Attachment(f"spanner-journal-{stamp}.json", to_bytes(data), "application/json"))]

    def forget(self, user: str, state: dict) -> list[Reply]:
        state["pending"] = {"action": "forget", "step": 1}
        return [Reply(self.ctx.say("forget_first"), (Choice("Yes, erase everything", "forget:1"),
                                                     Choice("No, keep it", "forget:no")))]

    def forget_choice(self, user: str, data: str, state: dict) -> list[Reply]:
        pending = state.get("pending") or {}
        if pending.get("action") != "forget" or data == "forget:no":
            state.pop("pending", None)
            return [Reply(self.ctx.say("forget_kept"))]
        if data == "forget:1" and pending.get("step") == 1:
            pending["step"] = 2
            return [Reply(self.ctx.say("forget_second"), (Choice("Erase it all now", "forget:2"),
                                                          Choice("No, keep it", "forget:no")))]
        if data == "forget:2" and pending.get("step") == 2:
            if self.ctx.lifecycle is None:
                return self._unavailable()
            self.ctx.lifecycle.forget(user)
            state.clear()
            state["_forgotten"] = True  # nothing more may be written for this person
            return [Reply(self.ctx.say("forgotten"))]
        state.pop("pending", None)
        return [Reply(self.ctx.say("forget_kept"))]
