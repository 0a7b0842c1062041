"""/export portfolio FORMAT [from DATE] [to DATE]: a regulator's form, filled from the person's reflections.

The steps, each a button: the check (what could identify someone, by kind,
and the line about incident reporting; replace or keep), for a form with
themes (NMC's Code) the themes of each account, then the list of replacements
with Undo buttons and the choice of an AI-use note. The files (Markdown and a
PDF form) hold only what the author approved. `files` is also what `spanner
admin export --portfolio` calls, with the choices given as options.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from .context import Context
from .portfolio import build, in_period, markdown
from .records import Attachment, Choice, Entry, Reply
from .registry import Button, Call, Registry
from .share_check import ShareCheck, toggle

#: The steps of a portfolio export: replace or not, a theme on or off, next account, undo one, make or cancel.
PORTFOLIO = Button("pf", r"(labels:(?:yes|no)|theme:\d|next|undo:\d{1,3}|make:(?:plain|ai|no))")
CHECK = "✓ "  # the mark on a theme button that is on (a symbol, not a word)


def parse_day(text: str) -> date | None:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


class PortfolioCommands:
    def __init__(self, ctx: Context, check: ShareCheck):
        self.ctx = ctx
        self.check = check

    def register(self, r: Registry) -> None:
        r.button(PORTFOLIO, lambda call: self.choose(call.user, call.values[0], call.state))
        r.on_pending("portfolio", self._moved_on)

    async def _moved_on(self, call: Call) -> list[Reply]:
        call.state.pop("pending", None)
        return [Reply(self.ctx.say("portfolio_cancelled"))] + await call.again()

    # ----- reading the command ----------------------------------------------------------------

    def parse(self, args: str) -> tuple[str, date | None, date | None] | str:
        """(format, from, to), or the key of the message that says what is wrong."""
        words = args.split()
        if not words or words[0].lower() not in self.ctx.prompts.exports:
            return "portfolio_usage"
        start = end = None
        rest = words[1:]
        while rest:
            if len(rest) < 2 or rest[0].lower() not in ("from", "to"):
                return "portfolio_usage"
            day = parse_day(rest[1])
            if day is None:
                return "portfolio_bad_date:" + rest[1]
            if rest[0].lower() == "from":
                start = day
            else:
                end = day
            rest = rest[2:]
        return words[0].lower(), start, end

    def problem(self, key: str) -> list[Reply]:
        if key.startswith("portfolio_bad_date:"):
            return [Reply(self.ctx.say("portfolio_bad_date", text=key.split(":", 1)[1][:40]))]
        return [Reply(self.ctx.say("portfolio_usage", formats=", ".join(sorted(self.ctx.prompts.exports))))]

    def entries(self, user: str, start: date | None, end: date | None) -> list[Entry]:
        return in_period(self.ctx.journal.list_entries(user, 1_000_000), start, end, self.ctx.tz)

    # ----- the author's steps -----------------------------------------------------------------

    def start(self, user: str, args: list[str], state: dict) -> list[Reply]:
        parsed = self.parse(args[0] if args else "")
        if isinstance(parsed, str):
            return self.problem(parsed)
        name, start, end = parsed
        entries = self.entries(user, start, end)
        if not entries:
            return [Reply(self.ctx.say("portfolio_nothing"))]
        state["pending"] = {"action": "portfolio", "format": name, "from": start and start.isoformat(),
                            "to": end and end.isoformat(), "numbers": [e.number for e in entries],
                            "undone": [], "themes": {}, "at": 0}
        checked, _ = self.check.entry_plan(entries, "export")
        say = self.ctx.say
        return [Reply(self.check.found_text(checked), (Choice(say("button_labels_yes"), PORTFOLIO.data("labels:yes")),
                                                       Choice(say("button_labels_no"), PORTFOLIO.data("labels:no"))))]

    def _entries_of(self, user: str, pending: dict) -> list[Entry]:
        found = [self.ctx.journal.get_entry(user, n) for n in pending["numbers"]]
        return [e for e in found if e is not None]

    def _themes_step(self, user: str, pending: dict) -> list[Reply]:
        fmt = self.ctx.prompts.exports[pending["format"]]
        entries = self._entries_of(user, pending)
        if pending["at"] >= len(entries):
            return self._ready(user, pending)
        entry = entries[pending["at"]]
        chosen = pending["themes"].get(str(entry.number), [])
        say = self.ctx.say
        buttons = [Choice(say("button_theme", mark=CHECK if i in chosen else "", theme=theme),
                          PORTFOLIO.data(f"theme:{i}")) for i, theme in enumerate(fmt.themes)]
        buttons.append(Choice(say("button_next"), PORTFOLIO.data("next")))
        return [Reply(say("portfolio_theme", n=pending["at"] + 1, total=len(entries), number=entry.number,
                          date=self.ctx.local_day(entry.created_at)), tuple(buttons))]

    def _ready(self, user: str, pending: dict) -> list[Reply]:
        say = self.ctx.say
        fmt = self.ctx.prompts.exports[pending["format"]]
        replies = [Reply(say("portfolio_ready", count=len(pending["numbers"]), title=fmt.title),
                         (Choice(say("button_make"), PORTFOLIO.data("make:plain")),
                          Choice(say("button_make_ai"), PORTFOLIO.data("make:ai")),
                          Choice(say("button_make_no"), PORTFOLIO.data("make:no"))))]
        if pending.get("labelled"):
            checked, _ = self.check.entry_plan(self._entries_of(user, pending), "export")
            changes = self.check.changes(checked, pending["undone"], lambda i: PORTFOLIO.data(f"undo:{i}"))
            if changes is not None:
                replies.append(changes)
        return replies

    def choose(self, user: str, step: str, state: dict) -> list[Reply]:
        say = self.ctx.say
        pending = state.get("pending") or {}
        if pending.get("action") != "portfolio":
            return [Reply(say("choose_option"))]
        fmt = self.ctx.prompts.exports.get(pending["format"])
        kind, _, value = step.partition(":")
        if kind == "labels":
            pending["labelled"] = value == "yes"
            return self._themes_step(user, pending) if fmt.themes else self._ready(user, pending)
        if kind == "theme" and "labelled" in pending and fmt.themes:
            entries = self._entries_of(user, pending)
            if pending["at"] < len(entries):
                chosen = pending["themes"].setdefault(str(entries[pending["at"]].number), [])
                toggle(chosen, int(value))
            return self._themes_step(user, pending)
        if kind == "next" and "labelled" in pending:
            pending["at"] += 1
            return self._themes_step(user, pending)
        if kind == "undo" and pending.get("labelled"):
            undone = pending["undone"]
            toggle(undone, int(value))
            return self._ready(user, pending)
        if kind == "make" and "labelled" in pending:
            state.pop("pending", None)
            if value == "no":
                return [Reply(say("portfolio_cancelled"))]
            entries = self._entries_of(user, pending)
            themes = {int(k): v for k, v in pending["themes"].items()}
            period = tuple(date.fromisoformat(d) if d else None for d in (pending["from"], pending["to"]))
            made = self.files(entries, pending["format"], period, pending["undone"] if pending["labelled"] else None,
                              themes, ai_note=value == "ai")
            replies = [Reply(say("portfolio_done", count=len(entries)), attachment=made[0])]
            return replies + [Reply(say("portfolio_pdf"), attachment=a) for a in made[1:]]
        return [Reply(say("choose_option"))]

    # ----- the files --------------------------------------------------------------------------

    def files(self, entries: list[Entry], name: str, period: tuple, undone: list[int] | None,
              themes: dict[int, list[int]], ai_note: bool) -> list[Attachment]:
        """The Markdown and (with a printer) the PDF; names replaced unless `undone` is None."""
        if undone is not None:
            checked, sizes = self.check.entry_plan(entries, "export")
            entries = self.check.apply(entries, checked, sizes, undone)
        fmt = self.ctx.prompts.exports[name]
        doc = build(fmt, entries, self.ctx.prompts.protocols, self.ctx.say, self.ctx.tz, period, self.ctx.now(),
                    themes, ai_note)
        base = re.sub(r"[^\w.-]", "-", self.ctx.say("portfolio_file_name", format=name,
                                                     date=self.ctx.now().strftime("%Y%m%d")))
        made = [Attachment(base + ".md", markdown(doc).encode("utf-8"), "text/markdown")]
        if self.ctx.printer is not None:
            made.append(Attachment(base + ".pdf", self.ctx.printer.pdf(doc), "application/pdf"))
        return made
