"""Sharing by choice, supervision, the access log, export and "forget me".

Nothing is shared by default. /share walks the author through who, how much,
and whether to replace names, then shows exactly what will be seen before it
goes; the reader is told. Supervisors reach shared entries only through the
Sharing port, whose single check admits active shares addressed to them.
Comments on a shared entry are threads (reply_commands).
"""

from __future__ import annotations

from .context import Context
from .export import build_json, build_markdown, to_bytes
from .inputs import parse_number
from .journal_commands import JournalCommands
from .portfolio_commands import PortfolioCommands
from .share_check import ShareCheck, toggle
from .records import Attachment, Choice, Entry, Reply
from .registry import JOURNALING, Button, Call, Registry
from .reply_commands import REPLY

READER_ROLES = ("supervisor", "admin")
#: The steps of /share: which reader, how much, names replaced or not, and the final yes or no.
SHARE = Button("share", r"(reader:\d{1,2}|scope:(?:summary|full)|labels:(?:yes|no)|undo:\d{1,3}|confirm:(?:yes|no))")
#: Read one shared entry (the share's id).
READ = Button("rv", r"(\d{1,9})")
#: The two confirmations of /forget, or "no".
FORGET = Button("forget", r"(1|2|no)")


class SharingCommands:
    def __init__(self, ctx: Context, journal: JournalCommands):
        self.ctx = ctx
        self.journal = journal
        self.check = ShareCheck(ctx)
        self.portfolio = PortfolioCommands(ctx, self.check)

    def register(self, r: Registry) -> None:
        r.command("share", lambda call: self.share(call.user, call.args, call.state), JOURNALING)
        r.command("unshare", lambda call: self.unshare(call.user, call.args), JOURNALING)
        r.command("shared", lambda call: self.shared(call.user), JOURNALING)
        r.command("access", lambda call: self.access(call.user), JOURNALING)
        r.command("team", lambda call: self.team(call.user), READER_ROLES)
        r.command("review", lambda call: self.review(call.user), READER_ROLES)
        r.command("export", self._export)
        self.portfolio.register(r)
        r.command("forget", lambda call: self.forget(call.user, call.state))
        r.button(SHARE, lambda call: self._choose(call.user, call.values[0], call.state))
        r.button(READ, lambda call: self.read(call.user, int(call.values[0])))
        r.button(FORGET, lambda call: self.forget_choice(call.user, call.values[0], call.state))
        # /share and /forget wait for buttons: a typed message means they moved on, and nothing happens.
        r.on_pending("share", lambda call: self._moved_on(call, "share_cancelled"))
        r.on_pending("forget", lambda call: self._moved_on(call, "forget_kept"))

    async def _moved_on(self, call: Call, key: str) -> list[Reply]:
        call.state.pop("pending", None)
        return [Reply(self.ctx.say(key))] + await call.again()

    @property
    def port(self):
        return self.ctx.sharing

    def _unavailable(self) -> list[Reply]:
        return [Reply(self.ctx.say("sharing_unavailable"))]

    # ----- the author's side ----------------------------------------------------------------

    def content(self, entry: Entry, scope: str, undone: list[int] | None) -> str:
        """What the reader will see: with names replaced unless `undone` is None (names kept)."""
        if undone is not None:
            checked, sizes = self.check.entry_plan([entry], "share")
            entry = self.check.apply([entry], checked, sizes, undone)[0]
        if scope == "summary":
            return entry.summary or entry.note or entry.title
        return self.journal.show_text(entry)

    def _preview(self, entry: Entry, pending: dict) -> list[Reply]:
        """Exactly what will be shared, then (with names replaced) every replacement with its Undo button."""
        say = self.ctx.say
        undone = pending["undone"] if pending["labelled"] else None
        replies = [Reply(say("share_preview", content=self.content(entry, pending["scope"], undone)),
                         (Choice(say("button_share_yes"), SHARE.data("confirm:yes")),
                          Choice(say("button_share_no"), SHARE.data("confirm:no"))))]
        if pending["labelled"]:
            checked, _ = self.check.entry_plan([entry], "share")
            changes = self.check.changes(checked, undone, lambda i: SHARE.data(f"undo:{i}"))
            if changes is not None:
                replies.append(changes)
        return replies

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
                      tuple(Choice(self.ctx.say("button_reader", name=r.name, role=r.role), SHARE.data(f"reader:{i}"))
                            for i, r in enumerate(readers)))]

    def _choose(self, user: str, step: str, state: dict) -> list[Reply]:
        say = self.ctx.say
        pending = state.get("pending") or {}
        if pending.get("action") != "share":
            return [Reply(say("choose_option"))]
        kind, _, value = step.partition(":")
        if kind == "reader" and int(value) < len(pending["readers"]):
            pending["reader"] = pending["readers"][int(value)]
            return [Reply(say("share_scope"), (Choice(say("button_scope_summary"), SHARE.data("scope:summary")),
                                               Choice(say("button_scope_full"), SHARE.data("scope:full"))))]
        if kind in ("scope", "labels", "undo") and "reader" in pending:
            entry = self.ctx.journal.get_entry(user, pending["number"])
            if entry is None:
                state.pop("pending", None)
                return [Reply(say("not_found", number=pending["number"]))]
        if kind == "scope" and "reader" in pending:
            pending["scope"] = value
            # The check before anything leaves the journal: what could identify someone, by kind.
            checked, _ = self.check.entry_plan([entry], "share")
            return [Reply(self.check.found_text(checked),
                          (Choice(say("button_labels_yes"), SHARE.data("labels:yes")),
                           Choice(say("button_labels_no"), SHARE.data("labels:no"))))]
        if kind == "labels" and "scope" in pending:
            pending["labelled"], pending["undone"] = value == "yes", []
            return self._preview(entry, pending)
        if kind == "undo" and pending.get("labelled"):
            undone = pending["undone"]
            toggle(undone, int(value))
            return self._preview(entry, pending)
        if kind == "confirm" and "labelled" in pending:
            state.pop("pending", None)
            if value != "yes":
                return [Reply(say("share_cancelled"))]
            entry = self.ctx.journal.get_entry(user, pending["number"])
            if entry is None:
                return [Reply(say("not_found", number=pending["number"]))]
            undone = pending["undone"] if pending["labelled"] else None
            share_id = self.port.share(user, entry.number, pending["reader"], pending["scope"], pending["labelled"],
                                       self.content(entry, pending["scope"], undone))
            # The reader is told at once, with a button to read it (the read is logged as always).
            self.ctx.notices.notify(pending["reader"], {
                "text": say("shared_with_you", name=self.ctx.journal.display_name(user), number=entry.number,
                            scope=say(f"scope_{pending['scope']}")),
                "choices": [[say("button_read"), READ.data(share_id)]]}, kind="shared", source=user)
            return [Reply(say("shared_done", number=entry.number))]
        return [Reply(say("choose_option"))]

    def unshare(self, user: str, args: str) -> list[Reply]:
        if self.port is None:
            return self._unavailable()
        number = parse_number(args)
        if number is None:
            return [Reply(self.ctx.say("number_usage", command="/unshare"))]
        count = self.port.unshare(user, number)
        return [Reply(self.ctx.say("unshared" if count else "not_shared", number=number))]

    def share_line(self, share) -> str:
        say = self.ctx.say
        return say("shared_line", number=share.number, reader=share.reader, role=share.reader_role,
                   scope=say(f"scope_{share.scope}"), since=self.ctx.local(share.since))

    def shared(self, user: str) -> list[Reply]:
        if self.port is None:
            return self._unavailable()
        rows = self.port.shares_of(user)
        if not rows:
            return [Reply(self.ctx.say("nothing_shared"))]
        return [Reply("\n".join([self.ctx.say("shared_header")] + [self.share_line(r) for r in rows]))]

    def access(self, user: str) -> list[Reply]:
        if self.port is None:
            return self._unavailable()
        rows = self.port.access_log(user)
        if not rows:
            return [Reply(self.ctx.say("access_none"))]
        lines = [self.ctx.say("access_header")]
        lines += [self.ctx.say("access_line", when=self.ctx.local(at), name=name, role=role, number=number)
                  for name, role, number, at in rows[:50]]
        return [Reply("\n".join(lines))]

    def supervision_notices(self, supervisor: str, spanner: str) -> list[tuple[str, dict]]:
        """What the spanner and the supervisor are told when an admin links them: (handle, notice) pairs."""
        say, name = self.ctx.say, self.ctx.journal.display_name
        return [(spanner, {"text": say("supervisor_linked", supervisor=name(supervisor))}),
                (supervisor, {"text": say("supervisee_linked", spanner=name(spanner))})]

    # ----- the reader's side ----------------------------------------------------------------

    def _is_reader(self, user: str) -> bool:
        return self.port is not None and self.port.is_reader(user)

    def team(self, user: str) -> list[Reply]:
        if not self._is_reader(user):
            return [Reply(self.ctx.say("supervisors_only"))]
        rows = self.port.team(user)
        if not rows:
            return [Reply(self.ctx.say("team_empty"))]
        return [Reply("\n".join([self.ctx.say("team_header")] +
                                [self.ctx.say("team_line", name=name, count=count) for name, count in rows]))]

    def review(self, user: str) -> list[Reply]:
        if not self._is_reader(user):
            return [Reply(self.ctx.say("supervisors_only"))]
        items = self.port.visible(user)
        if not items:
            return [Reply(self.ctx.say("review_empty"))]
        say = self.ctx.say
        lines = [say("review_header")]
        lines += [say("review_line", name=item.owner_name, number=item.number, scope=say(f"scope_{item.scope}"),
                      since=self.ctx.local(item.since)) for item in items[:20]]
        choices = tuple(Choice(say("button_read_item", name=item.owner_name, number=item.number),
                               READ.data(item.share_id)) for item in items[:20])
        return [Reply("\n".join(lines), choices)]

    def read(self, user: str, share_id: int) -> list[Reply]:
        item = self.port.read(user, share_id) if self.port is not None else None
        if item is None:
            return [Reply(self.ctx.say("not_shared_with_you"))]
        say = self.ctx.say
        lines = [say("read_header", name=item.owner_name, number=item.number), "", item.content]
        if item.thread:
            lines += [""] + self.journal.thread_lines(item.thread)
        return [Reply("\n".join(lines), (Choice(say("button_comment"), REPLY.data("s", share_id)),))]

    # ----- export and forget ------------------------------------------------------------------

    def _export(self, call: Call) -> list[Reply]:
        """/export: everything; /export portfolio FORMAT ...: a regulator's form (portfolio_commands)."""
        if call.args.split()[:1] and call.args.split()[0].lower() == "portfolio":
            return self.portfolio.start(call.user, call.args.split(None, 1)[1:], call.state)
        return self.export(call.user)

    def export(self, user: str) -> list[Reply]:
        entries = self.ctx.journal.list_entries(user, 1_000_000)
        port = self.port
        notes = self.ctx.mentoring.notes_of(user) if self.ctx.mentoring is not None else []
        data = build_json(user, self.ctx.roles(user),
                          self.ctx.journal.get_timezone(user) or self.ctx.settings.timezone,
                          entries, port.shares_of(user) if port else [],
                          port.comments_for_owner(user) if port else [], port.access_log(user) if port else [],
                          notes, self.ctx.prompts.protocols, self.ctx.now())
        name = self.ctx.say("export_file_name", date=self.ctx.now().strftime("%Y%m%d"))
        markdown = build_markdown(data, self.ctx.tz, self.ctx.say).encode("utf-8")
        return [Reply(self.ctx.say("export_ready", count=len(entries)),
                      attachment=Attachment(name + ".md", markdown, "text/markdown")),
                Reply(self.ctx.say("export_json"), attachment=Attachment(name + ".json", to_bytes(data), "application/json"))]

    def forget(self, user: str, state: dict) -> list[Reply]:
        state["pending"] = {"action": "forget", "step": 1}
        say = self.ctx.say
        return [Reply(say("forget_first"), (Choice(say("button_forget_first"), FORGET.data(1)),
                                            Choice(say("button_forget_no"), FORGET.data("no"))))]

    def forget_choice(self, user: str, step: str, state: dict) -> list[Reply]:
        say = self.ctx.say
        pending = state.get("pending") or {}
        if pending.get("action") != "forget" or step == "no":
            state.pop("pending", None)
            return [Reply(say("forget_kept"))]
        if step == "1" and pending.get("step") == 1:
            pending["step"] = 2
            return [Reply(say("forget_second"), (Choice(say("button_forget_second"), FORGET.data(2)),
                                                 Choice(say("button_forget_no"), FORGET.data("no"))))]
        if step == "2" and pending.get("step") == 2:
            if self.ctx.lifecycle is None:
                return self._unavailable()
            self.ctx.lifecycle.forget(user)
            state.clear()
            state["_forgotten"] = True  # nothing more may be written for this person
            return [Reply(self.ctx.say("forgotten"))]
        state.pop("pending", None)
        return [Reply(self.ctx.say("forget_kept"))]
