"""/insights: patterns across the person's own entries, with charts, and keeping them as an entry to share.

`/insights` looks across the whole journal, `/insights since 2025-03-01` from
a date, and `/insights since` from the last time the person shared an entry
(to prepare for a supervision conversation). The analysis is insights.py; here
it becomes messages (every statement cites its entries as #numbers) and charts
(a PNG through the Charts port, with a text alternative as its caption).

Insights are the person's own: nobody else can ask for them. The button under
them keeps the text as a note in their journal, which they may then /share
like any entry; until then no mentor or supervisor sees it.
"""

from __future__ import annotations

from datetime import date

from .context import Context
from .insights import Cited, Insights, build
from .records import Attachment, Choice, Reply
from .registry import JOURNALING, Button, Call, Registry
from .wording import clip

#: Keep these insights as a journal entry: the date they start from, or "all".
KEEP = Button("inskeep", r"(all|\d{4}-\d{2}-\d{2})")
#: A statement cites at most this many entries by number (the newest); the rest are counted.
CITED_NUMBERS = 12


class InsightCommands:
    def __init__(self, ctx: Context, journal_commands):
        self.ctx = ctx
        self.journal_commands = journal_commands  # to keep the text as a note, as /note would

    def register(self, r: Registry) -> None:
        r.command("insights", self.insights, JOURNALING)
        r.button(KEEP, self.keep)

    # ----- the command ---------------------------------------------------------------------------

    def insights(self, call: Call) -> list[Reply]:
        say = self.ctx.say
        args = call.args.split()
        notes: list[Reply] = []
        if not args:
            since = None
        elif args[0].lower() != "since" or len(args) > 2:
            return [Reply(say("insights_usage"))]
        elif len(args) == 1:
            since = self._last_shared(call.user)
            if since is None:
                notes.append(Reply(say("insights_nothing_shared")))
        else:
            try:
                since = date.fromisoformat(args[1])
            except ValueError:
                return [Reply(say("insights_bad_date", date=args[1][:20]))]
        found, text = self.compose(call.user, since)
        if found.entries == 0:
            return notes + [Reply(say("insights_none_since", since=self._day(since)) if since else say("no_entries"))]
        keep = Choice(say("insights_keep_button"), KEEP.data(since.isoformat() if since else "all"))
        return notes + [Reply(text, (keep,))] + self.charts(found)

    def _last_shared(self, user: str) -> date | None:
        shares = self.ctx.sharing.shares_of(user) if self.ctx.sharing is not None else []
        if not shares:
            return None
        return max(s.since for s in shares).astimezone(self.ctx.tz).date()

    def compose(self, user: str, since: date | None) -> tuple[Insights, str]:
        """The insights and their text (every statement with the entries it rests on)."""
        idx = self.ctx.search_index.person(user)  # the entries, decrypted once and kept in memory
        entries = list(idx.entries.values()) if idx is not None else []
        guard = self.ctx.prompts.guard
        found = build(entries, self.ctx.prompts.protocols.get(self.ctx.settings.protocol), guard.roles,
                      guard.common_capitalised, since, self.ctx.tz)
        return found, self.render(found)

    def render(self, found: Insights) -> str:
        say = self.ctx.say
        if found.since is None:
            lines = [say("insights_header", count=found.entries)]
        else:
            lines = [say("insights_header_since", count=found.entries, since=self._day(found.since))]
        if found.empty:
            return "\n".join(lines + [say("insights_nothing_to_count")])
        for key, cited in (("insights_approaches", found.approaches), ("insights_levels", found.levels),
                           ("insights_stances", found.stances), ("insights_themes", found.themes),
                           ("insights_people", found.people)):
            if cited:
                lines.append(say(key, items=self._items(cited)))
        if len(found.periods) > 1 and found.stances:
            lines.append(say("insights_stances_over_time", rows=self._rows(found.periods, found.stance_series)))
        if found.next_steps:
            taken = sum(1 for p in found.next_steps if p.later is not None)
            lines.append(say("insights_next_steps", count=len(found.next_steps), taken=taken))
            for p in found.next_steps[-CITED_NUMBERS:]:
                step = clip(p.step, 80)
                if p.later is None:
                    lines.append(say("insights_step_open", number=p.set_in, step=step))
                else:
                    lines.append(say("insights_step_taken", number=p.set_in, step=step, later=p.later,
                                     words=", ".join(p.shared)))
        return "\n".join(lines)

    def _items(self, cited: list[Cited]) -> str:
        say = self.ctx.say
        return "; ".join(say("insights_item", label=c.label, count=len(c.evidence), numbers=self._numbers(c.numbers))
                         for c in cited)

    def _numbers(self, numbers: list[int]) -> str:
        shown = ", ".join(f"#{n}" for n in numbers[-CITED_NUMBERS:])
        more = len(numbers) - CITED_NUMBERS
        return self.ctx.say("insights_numbers_more", numbers=shown, more=more) if more > 0 else shown

    def _rows(self, periods: list[str], series: dict[str, list[int]]) -> str:
        say = self.ctx.say
        rows = []
        for i, period in enumerate(periods):
            counts = ", ".join(f"{label} {values[i]}" for label, values in series.items() if values[i])
            if counts:
                rows.append(say("insights_period_row", period=period, counts=counts))
        return "; ".join(rows)

    def _day(self, day: date) -> str:
        return day.strftime("%d %b %Y")

    # ----- charts ------------------------------------------------------------------------------

    def charts(self, found: Insights) -> list[Reply]:
        """Approaches and themes over time, as PNGs with their text alternative as the caption."""
        if self.ctx.charts is None:
            return []
        say = self.ctx.say
        unit = say("insights_unit_month" if found.by_month else "insights_unit_week")
        out = []
        for what, series in (("approaches", found.approach_series), ("themes", found.theme_series)):
            if not series:
                continue
            title = say(f"insights_chart_{what}", unit=unit)
            png = self.ctx.charts.bars_over_time(title, found.periods, series, say("insights_chart_y"))
            alt = say("insights_chart_alt", title=title, rows=self._rows(found.periods, series))
            name = say("insights_chart_file", what=what, date=self.ctx.now().astimezone(self.ctx.tz).date())
            out.append(Reply(clip(alt, 1000), attachment=Attachment(name + ".png", png, "image/png")))
        return out

    # ----- keeping them as an entry ------------------------------------------------------------

    def keep(self, call: Call) -> list[Reply]:
        since = None if call.values[0] == "all" else date.fromisoformat(call.values[0])
        found, text = self.compose(call.user, since)
        if found.entries == 0:
            return [Reply(self.ctx.say("no_entries"))]
        saved = self.journal_commands.store_note(call.user, text)
        return [Reply(self.ctx.say("insights_kept", number=saved.number))]

