"""Journal commands over the user's own entries: /note, /journal, /show, /edit, /delete, /search.

/search asks the person's in-memory index (search_index.py) and says why each entry matched.

Every lookup goes through the Journal port with the asking user's handle, so
an entry number can only ever reach that user's own entries. A plain message
that nothing else claims is kept as a quick note (the last text handler).
"""

from __future__ import annotations

from datetime import datetime

from .context import Context
from .inputs import InputError, is_blank, parse_number
from .records import Choice, Entry, Reply
from .reflection import first_sentence, parse_tags
from .registry import JOURNALING, Button, Call, Registry
from .search_index import parse_query
from .wording import clip

#: Confirming a delete: yes or no, and the entry number.
DELETE = Button("del", r"(yes|no):(\d{1,9})")
#: Choosing what to change in an entry: its number and the field key (answer:STEP for an answer).
EDIT = Button("edit", r"(\d{1,9}):(note|summary|tags|answer:[a-z0-9_]{1,40})")
DELETE_YES = {"yes", "y", "delete", "yes, delete"}
DELETE_NO = {"no", "n", "keep", "no, keep it"}


class JournalCommands:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        # Set by the engine: the mentoring flow's claim on "/note NAME TEXT" (a note to a mentor or mentee).
        self.addressed = None

    def register(self, r: Registry) -> None:
        r.command("note", self.note, JOURNALING)
        r.command("journal", lambda call: self.journal(call.user), JOURNALING)
        r.command("show", lambda call: self.show(call.user, call.args), JOURNALING)
        r.command("edit", lambda call: self.edit(call.user, call.args, call.state), JOURNALING)
        r.command("delete", lambda call: self.delete(call.user, call.args, call.state), JOURNALING)
        r.command("search", lambda call: self.search(call.user, call.args), JOURNALING)
        r.button(DELETE, lambda call: self.confirm_delete(call.user, int(call.values[1]), call.values[0] == "yes",
                                                          call.state))
        r.button(EDIT, lambda call: self.choose_field(call.user, int(call.values[0]), call.values[1], call.state))
        r.on_pending("delete", self.delete_by_text)
        r.on_pending("edit", self.edit_by_text)

    def label(self, entry: Entry) -> str:
        return first_sentence(entry.summary or entry.note or entry.title or self.ctx.say("empty_text"), 70)

    def kind_label(self, entry: Entry) -> str:
        """Quick note, reflection, or a check-in with its programme week."""
        if entry.week is not None:
            return self.ctx.say("kind_checkin", week=entry.week)
        return self.ctx.say("kind_reflection" if entry.kind == "reflection" else "kind_note")

    def _line(self, entry: Entry) -> str:
        when = self.ctx.local(entry.created_at) if entry.created_at else ""
        tags = self.ctx.say("journal_line_tags", tags=", ".join(entry.tags)) if entry.tags else ""
        return self.ctx.say("journal_line", number=entry.number, when=when, kind=self.kind_label(entry),
                            label=self.label(entry), tags=tags)

    # ----- notes --------------------------------------------------------------------------------

    def note(self, call: Call) -> list[Reply]:
        if is_blank(call.args):
            return [Reply(self.ctx.say("note_usage"))]
        if self.addressed is not None:
            claimed = self.addressed(call)
            if claimed is not None:
                return claimed
        return self.save_note(call.user, call.args, call.state)

    def store_note(self, user: str, text: str) -> Entry:
        entry = Entry(kind="note", note=text, title=first_sentence(text, 80))
        return self.ctx.journal.add_entry(user, entry, self.ctx.embed_entry(entry))

    def save_note(self, user: str, text: str, state: dict) -> list[Reply]:
        saved = self.store_note(user, text)
        if state.get("reflect"):
            started = self.ctx.local(datetime.fromisoformat(state["reflect"]["started"]))
            return [Reply(self.ctx.say("note_saved_with_pending", number=saved.number, started=started))]
        return [Reply(self.ctx.say("note_saved", number=saved.number))]

    def quick_note(self, call: Call) -> list[Reply]:
        """The last text handler: a plain message nothing else claimed is a quick note."""
        return self.save_note(call.user, call.args, call.state)

    def journal(self, user: str) -> list[Reply]:
        entries = self.ctx.journal.list_entries(user, self.ctx.settings.journal_page)
        if not entries:
            return [Reply(self.ctx.say("no_entries"))]
        lines = [self.ctx.say("journal_header")] + [self._line(e) for e in entries]
        total = self.ctx.journal.count_entries(user)
        if total > len(entries):
            lines.append(self.ctx.say("journal_more", shown=len(entries), total=total))
        return [Reply("\n".join(lines))]

    def _lookup(self, user: str, args: str, command: str) -> tuple[Entry | None, list[Reply]]:
        number = parse_number(args)
        if number is None:
            return None, [Reply(self.ctx.say("number_usage", command=command))]
        entry = self.ctx.journal.get_entry(user, number)
        if entry is None:
            return None, [Reply(self.ctx.say("not_found", number=number))]
        return entry, []

    def show(self, user: str, args: str) -> list[Reply]:
        entry, problem = self._lookup(user, args, "/show")
        if entry is None:
            return problem
        text = self.show_text(entry)
        thread = self.ctx.sharing.thread(user, entry.number) if self.ctx.sharing is not None else []
        if thread:
            text += "\n\n" + "\n".join(self.thread_lines(thread)
                                        + [self.ctx.say("thread_reply_hint", number=entry.number)])
        return [Reply(text)]

    def thread_lines(self, thread: list) -> list[str]:
        """The comments on an entry, oldest first, as its author or its reader sees them."""
        say = self.ctx.say
        return [say("thread_header")] + [
            say("thread_line", name=say("you") if said.mine else said.name, when=self.ctx.local(said.when),
                text=said.text) for said in thread]

    def show_text(self, entry: Entry) -> str:
        say = self.ctx.say
        lines = [say("show_header", number=entry.number, kind=self.kind_label(entry),
                     when=self.ctx.local(entry.created_at))]
        if entry.note:
            lines.append(entry.note)
        for a in entry.answers:
            lines.append(f"\n{a.question}")
            lines.append(say("skipped") if a.skipped else a.answer)
            if a.followup_question:
                lines.append(f"  {a.followup_question}")
                lines.append(f"  {a.followup_answer or say('skipped')}")
        if entry.summary:
            lines.append("\n" + say("show_summary", summary=entry.summary))
        if entry.tags:
            lines.append(say("show_tags", tags=", ".join(entry.tags)))
        if entry.suggestion:
            lines.append(say("show_idea", idea=entry.suggestion))
        return "\n".join(lines)

    # ----- delete -----------------------------------------------------------

    def delete(self, user: str, args: str, user_state: dict) -> list[Reply]:
        entry, problem = self._lookup(user, args, "/delete")
        if entry is None:
            return problem
        user_state["pending"] = {"action": "delete", "number": entry.number}
        say = self.ctx.say
        return [Reply(say("delete_confirm", number=entry.number, label=self.label(entry)),
                      (Choice(say("button_delete_yes"), DELETE.data("yes", entry.number)),
                       Choice(say("button_delete_no"), DELETE.data("no", entry.number))))]

    def delete_by_text(self, call: Call):
        word = call.args.strip().lower().rstrip(".!")
        yes = word in DELETE_YES
        replies = self.confirm_delete(call.user, call.pending["number"], yes, call.state)
        if yes or word in DELETE_NO:
            return replies
        return self._then(call, replies)  # they moved on: keep the entry and take this message as it stands

    @staticmethod
    async def _then(call: Call, replies: list[Reply]) -> list[Reply]:
        return replies + await call.again()

    def confirm_delete(self, user: str, number: int, yes: bool, user_state: dict) -> list[Reply]:
        user_state.pop("pending", None)
        if yes and self.ctx.journal.delete_entry(user, number):
            return [Reply(self.ctx.say("deleted", number=number))]
        if yes:
            return [Reply(self.ctx.say("not_found", number=number))]
        return [Reply(self.ctx.say("delete_kept", number=number))]

    # ----- edit -------------------------------------------------------------

    def _fields(self, entry: Entry) -> list[tuple[str, str]]:
        """(field key, label) pairs a user can change in this entry."""
        say = self.ctx.say
        fields = []
        if entry.kind == "note":
            fields.append(("note", say("field_note")))
        else:
            fields.append(("summary", say("field_summary")))
        fields.append(("tags", say("field_tags")))
        for a in entry.answers:
            title = self._step_title(a.step_id, entry.protocol)
            fields.append((f"answer:{a.step_id}", title))
        return fields

    def _step_title(self, step_id: str, protocol: str) -> str:
        proto = self.ctx.prompts.protocols.get(protocol)
        if proto:
            for step in proto.steps:
                if step.id == step_id:
                    return step.title
        return step_id.replace("_", " ").capitalize()

    def edit(self, user: str, args: str, user_state: dict) -> list[Reply]:
        entry, problem = self._lookup(user, args, "/edit")
        if entry is None:
            return problem
        user_state["pending"] = {"action": "edit", "number": entry.number, "field": None}
        choices = tuple(Choice(title, EDIT.data(entry.number, key)) for key, title in self._fields(entry))
        return [Reply(self.ctx.say("edit_which", number=entry.number), choices)]

    def choose_field(self, user: str, number: int, key: str, user_state: dict) -> list[Reply]:
        entry = self.ctx.journal.get_entry(user, number)
        if entry is None:
            user_state.pop("pending", None)
            return [Reply(self.ctx.say("not_found", number=number))]
        fields = dict(self._fields(entry))
        if key not in fields:
            return self.edit(user, str(number), user_state)
        user_state["pending"] = {"action": "edit", "number": number, "field": key}
        if key == "tags":
            return [Reply(self.ctx.say("edit_tags_prompt", current=", ".join(entry.tags) or self.ctx.say("none")))]
        current = self._get(entry, key)
        return [Reply(self.ctx.say("edit_prompt", field=fields[key].lower(),
                                   current=current or self.ctx.say("empty_text")))]

    def edit_by_text(self, call: Call) -> list[Reply]:
        if call.pending.get("field") is None:
            return self.pick_field_by_text(call.user, call.args, call.state)
        return self.apply_edit(call.user, call.args, call.state)

    def pick_field_by_text(self, user: str, text: str, user_state: dict) -> list[Reply]:
        pending = user_state["pending"]
        entry = self.ctx.journal.get_entry(user, pending["number"])
        if entry is None:
            user_state.pop("pending", None)
            return [Reply(self.ctx.say("not_found", number=pending["number"]))]
        fields = self._fields(entry)
        wanted = text.strip().lower()
        for i, (key, title) in enumerate(fields, start=1):
            if wanted in (title.lower(), key, str(i)):
                return self.choose_field(user, entry.number, key, user_state)
        return self.edit(user, str(entry.number), user_state)

    @staticmethod
    def _get(entry: Entry, key: str) -> str:
        if key == "note":
            return entry.note
        if key == "summary":
            return entry.summary
        step_id = key.removeprefix("answer:")
        return next((a.answer for a in entry.answers if a.step_id == step_id), "")

    def apply_edit(self, user: str, text: str, user_state: dict) -> list[Reply]:
        pending = user_state.pop("pending")
        entry = self.ctx.journal.get_entry(user, pending["number"])
        if entry is None:
            return [Reply(self.ctx.say("not_found", number=pending["number"]))]
        key = pending["field"]
        if key == "tags":
            entry.tags = parse_tags(text)
        elif key == "note":
            entry.note = text
            entry.title = first_sentence(text, 80)
        elif key == "summary":
            entry.summary = text
        else:
            step_id = key.removeprefix("answer:")
            for a in entry.answers:
                if a.step_id == step_id:
                    a.answer, a.skipped = text, False
        self.ctx.journal.update_entry(user, entry, self.ctx.embed_entry(entry))
        return [Reply(self.ctx.say("edited", number=entry.number))]

    # ----- search (the index: search_index.py) --------------------------------------------------

    def search(self, user: str, args: str) -> list[Reply]:
        say = self.ctx.say
        try:
            query = parse_query(args.strip())
        except InputError as problem:
            return [Reply(say(problem.key, **problem.values))]
        if query.empty:
            return [Reply(say("search_usage"))]
        qvec = self.ctx.embed(query.text) if query.text else None
        settings = self.ctx.settings
        matches = self.ctx.search_index.search(user, query, qvec, settings.search_min_similarity,
                                               settings.search_margin, settings.search_results, self.ctx.tz)
        asked = args.strip()
        if not matches:
            return [Reply(say("search_none", query=asked))]
        lines = [say("search_header", query=asked)]
        for m in matches:
            lines.append(self._line(m.entry))
            if m.matched_words:
                lines.append(say("search_why_words", words=", ".join(dict.fromkeys(m.matched_words))))
            elif m.passage:
                lines.append(say("search_why_meaning", passage=clip(m.passage, 140)))
        return [Reply("\n".join(lines))]

