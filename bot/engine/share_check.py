"""The check before anything leaves the journal: what could identify someone, by kind, and the undo list.

Both routes out (a share with a supervisor, a portfolio export) use it: it
plans the replacements for an entry (deidentify.py), tells the author what was
found by kind (never the values, and never in a log), adds the line that
incidents belong in the organisation's reporting system, and lists every
replacement with an Undo button so any single one can be kept as written.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from .context import Context
from .deidentify import Plan, Rules, entry_texts, plan, with_texts
from .records import Choice, Entry, Reply

log = logging.getLogger(__name__)
#: Undo buttons shown at most (Telegram keeps a message's keyboard small).
MAX_UNDO = 30


def toggle(chosen: list[int], value: int) -> None:
    """A button pressed twice undoes itself: an undo, a theme."""
    chosen.remove(value) if value in chosen else chosen.append(value)


class ShareCheck:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.rules = Rules(ctx.prompts.deidentify) if ctx.prompts.deidentify is not None else None

    def _label_word(self, kind: str) -> str:
        key = {"person": "label_person", "organisation": "label_organisation", "place": "label_place"}.get(kind)
        return self.ctx.say(key or f"deid_label_{kind}")

    def plan(self, texts: Sequence[str], route: str) -> Plan:
        finder = self.ctx.deidentifier
        if finder is None or self.rules is None:
            return Plan(tuple(texts), (), ())
        found = finder.find(list(texts))
        result = plan(texts, found, self.rules, self._label_word)
        # Kinds and counts only: what was found is never written to a log.
        log.info("identifiers before %s: %s", route, dict(result.counts()) or "none")
        return result

    def entry_plan(self, entries: Sequence[Entry], route: str) -> tuple[Plan, list[int]]:
        """One plan over several entries (labels consistent across them); the texts' count per entry."""
        texts, sizes = [], []
        for entry in entries:
            own = entry_texts(entry)
            texts += own
            sizes.append(len(own))
        return self.plan(texts, route), sizes

    def apply(self, entries: Sequence[Entry], checked: Plan, sizes: list[int], undone: Sequence[int]) -> list[Entry]:
        texts = checked.apply(self.ctx.deidentifier, undone) if checked.swaps else list(checked.texts)
        out, at = [], 0
        for entry, size in zip(entries, sizes):
            out.append(with_texts(entry, texts[at:at + size]))
            at += size
        return out

    def found_text(self, checked: Plan) -> str:
        say = self.ctx.say
        counts = checked.counts()
        if counts:
            kinds = ", ".join(f"{say(f'deid_kind_{kind}')} ({count})" for kind, count in counts)
            first = say("deid_found", kinds=kinds)
        else:
            first = say("deid_none")
        return first + "\n\n" + say("incident_line")

    def changes(self, checked: Plan, undone: Sequence[int], button: Callable[[int], str]) -> Reply | None:
        """Every replacement, numbered, with a button to undo (or redo) each one."""
        if not checked.groups:
            return None
        say = self.ctx.say
        lines = [say("deid_changes", count=len(checked.groups))]
        for n, group in enumerate(checked.groups, 1):
            lines.append(say("deid_kept_line", n=n, original=group.original) if n - 1 in undone else
                         say("deid_change_line", n=n, original=group.original, label=group.label))
        choices = tuple(Choice(say("button_redo" if n - 1 in undone else "button_undo", n=n), button(n - 1))
                        for n in range(1, min(len(checked.groups), MAX_UNDO) + 1))
        return Reply("\n".join(lines), choices)
