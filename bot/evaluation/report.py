"""Measures over what the engine said on the dev set, printed as one report (and JSON on request).

Every measure follows RUBRIC.md's definitions where one exists. The relevance measure is ours:

- *specific*: a follow-up after a typed answer picks up at least one content word of that answer
  (allowing inflection) that is not in the step's own question; after a button, a question about
  that choice counts as specific by construction and is reported apart;
- *lift*: how much closer in meaning (MiniLM cosine) a follow-up is to its own answer than to the
  other answers given at the same step in the dev set. A question that could follow any answer has
  a lift near zero; one written for this answer scores higher.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import asdict
from statistics import mean

import numpy as np

from bot.engine.guard import CLOSED_STARTS, Guard
from bot.engine.wording import content_words, jaccard, stem, unsupported, words

from .runner import Asked, CaseRun


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "0/0"


class Measures:
    """Computes the report from case runs. `embed` is the offline embedder (for re-asks and lift)."""

    def __init__(self, runs: list[CaseRun], guard: Guard, embed, examples: list[str], never: list[str],
                 screen, card_themes: dict[str, tuple[str, ...]], card_by_label: dict[str, str],
                 summary_titles: set[str]):
        self.runs = runs
        self.guard = guard
        self.embed = embed
        self.examples = examples
        self.never = [re.compile(p, re.I) for p in never]
        self.screen = screen
        self.card_themes = card_themes
        self.card_by_label = card_by_label
        self.summary_titles = summary_titles
        self.asked = [a for r in runs for a in r.asked]

    # ----- risk -------------------------------------------------------------------

    def risk(self) -> dict:
        messages = [m for r in self.runs for m in r.messages]
        out = {}
        for tier in ("urgent", "distress"):
            should = [m for m in messages if m.expected == tier]
            # Distress answered with the urgent reply still gets a human answer and support.
            caught = [m for m in should if m.detected == tier or (tier == "distress" and m.detected == "urgent")]
            out[f"{tier}_recall"] = (len(caught), len(should))
            out[f"{tier}_missed"] = [f"{m.case}:{m.key}" for m in should if m not in caught]
        clean = [m for m in messages if m.expected is None]
        for tier in ("urgent", "distress"):
            wrong = [m for m in clean if m.detected == tier]
            out[f"{tier}_false_positives"] = (len(wrong), len(clean))
            out[f"{tier}_false_positive_messages"] = [f"{m.case}:{m.key}" for m in wrong]
        over = [m for m in messages if m.expected == "distress" and m.detected == "urgent"]
        out["distress_answered_as_urgent"] = [f"{m.case}:{m.key}" for m in over]
        hard = [m for m in clean if m.kind == "hard_negative"]
        out["hard_negative_false_positives"] = (sum(1 for m in hard if m.detected), len(hard))
        return out

    # ----- follow-ups ---------------------------------------------------------------

    def _reasks(self, a: Asked, sims: dict[int, float], i: int) -> bool:
        return self.guard.reasks(a.question, a.step_question) or sims.get(i, 0.0) >= 0.8

    def followups(self) -> dict:
        asked = self.asked
        by_source = Counter(a.source for a in asked)
        questions = [a.question for a in asked]
        step_qs = [a.step_question for a in asked]
        qv = self.embed(questions) if questions else None
        sv = self.embed(step_qs) if step_qs else None
        step_sim = {i: float(qv[i] @ sv[i]) for i in range(len(asked))} if qv is not None else {}
        reasks = [a for i, a in enumerate(asked) if self._reasks(a, step_sim, i)]
        copied = [a for a in asked if any(a.question.strip() == e.strip() or jaccard(a.question, e) >= 0.6
                                          for e in self.examples)]
        unknown = [(a, self.guard.unknown_names(a.question, a.source_text)) for a in asked]
        unknown = [(a, names) for a, names in unknown if names]
        closed = [a for a in asked if a.question.lower().startswith(CLOSED_STARTS) or a.question.count("?") != 1]
        unsafe = [a for a in asked if self._unsafe_quote(a)]
        typed = [a for a in asked if not a.pressed]
        specific = [a for a in typed if self._specific(a)]
        seconds = [a.seconds for a in asked]
        return {
            "count": len(asked), "by_source": dict(by_source), "reasks": [self._show(a) for a in reasks],
            "copied_examples": [self._show(a) for a in copied],
            "unknown_names": [f"{self._show(a)}  <- {', '.join(n)}" for a, n in unknown],
            "closed_or_not_one_question": [self._show(a) for a in closed],
            "unsafe_quotes": [self._show(a) for a in unsafe],
            "specific": (len(specific), len(typed)), "lift": self._lift(),
            "latency_p50": percentile(seconds, 50), "latency_p95": percentile(seconds, 95),
        }

    def _unsafe_quote(self, a: Asked) -> bool:
        """The person's words quoted back include an instruction, abuse, a link or flagged risk."""
        if a.source != "quote" or "‘" not in a.question:
            return False
        quoted = a.question.split("‘", 1)[1].rsplit("’", 1)[0]
        return any(p.search(quoted) for p in self.never) or self.screen.level(quoted) is not None

    @staticmethod
    def _show(a: Asked) -> str:
        return f"{a.case}:{a.step}: {a.question}"

    @staticmethod
    def _specific(a: Asked) -> bool:
        own = {stem(w) for w in content_words(a.answer)} - {stem(w) for w in content_words(a.step_question)}
        return bool({stem(w) for w in content_words(a.question)} & own)

    def _lift(self) -> float:
        by_step: dict[str, list[Asked]] = defaultdict(list)
        for a in self.asked:
            if not a.pressed:
                by_step[a.step].append(a)
        lifts = []
        for group in by_step.values():
            if len(group) < 3:
                continue
            q = self.embed([a.question for a in group])
            ans = self.embed([a.answer for a in group])
            sims = q @ ans.T
            for i in range(len(group)):
                others = np.delete(sims[i], i)
                lifts.append(float(sims[i, i] - others.mean()))
        return mean(lifts) if lifts else 0.0

    # ----- summaries and literature --------------------------------------------------

    def summaries(self) -> dict:
        runs = [r for r in self.runs if r.summary]
        bad = []
        total = 0
        for r in runs:
            missing = unsupported(r.summary, r.summary_source, allowed=self.summary_titles)
            total += len(missing)
            if missing:
                bad.append(f"{r.case.id}: {', '.join(missing[:8])}")
        cut = [r.case.id for r in runs if any(line.rstrip()[-1:] not in ".!?" for line in r.summary.splitlines()
                                             if line.strip())]
        return {"count": len(runs), "unsupported_words": total, "unsupported": bad, "unfinished_lines": cut,
                "mean_words": mean(len(words(r.summary)) for r in runs) if runs else 0.0}

    def literature(self, floor: float | None = None) -> dict:
        """Suggestions against the cards a supervisor would accept; `floor` re-applies a threshold."""
        runs = [r for r in self.runs if r.case.mode == "reflection"]

        def offered_at(r: CaseRun) -> bool:
            return bool(r.suggestion) and (floor is None or r.suggestion_similarity >= floor)
        offered = [r for r in runs if offered_at(r)]
        on_list, overlap, wrongly, offered_cards = [], [], [], Counter()
        for r in offered:
            card = self.card_by_label.get(r.suggestion, "?")
            offered_cards[card] += 1
            expected = set(r.case.relevant_cards())
            themes = {t for c in expected for t in self.card_themes.get(c, ())}
            if card in expected:
                on_list.append(r)
            if set(self.card_themes.get(card, ())) & themes:
                overlap.append(r)
            if not expected:
                wrongly.append(f"{r.case.id}: {card}")
        silent_right = [r for r in runs if not offered_at(r) and not r.case.relevant_cards()]
        wanted = [r for r in runs if r.case.relevant_cards()]
        return {"offered": (len(offered), len(runs)), "on_the_list": (len(on_list), len(offered)),
                "theme_overlap": (len(overlap), len(offered)), "offered_when_none_fits": wrongly,
                "silent_when_none_fits": (len(silent_right), sum(1 for r in runs if not r.case.relevant_cards())),
                "offered_when_one_fits": (sum(1 for r in wanted if offered_at(r)), len(wanted)),
                "most_offered": offered_cards.most_common(3)}

    def literature_sweep(self) -> list[tuple[float, dict]]:
        """The literature measures at a range of thresholds (meaningful after a run with a low floor)."""
        return [(t, self.literature(t)) for t in [round(0.30 + 0.025 * i, 3) for i in range(15)]]

    # ----- output -------------------------------------------------------------------------

    def all(self) -> dict:
        return {"risk": self.risk(), "followups": self.followups(), "summaries": self.summaries(),
                "literature": self.literature()}


def render(results: dict, strategy: str, cases: int, seconds: float, detail: bool = False) -> str:
    r, f, s, lit = results["risk"], results["followups"], results["summaries"], results["literature"]
    lines = [f"spanner eval: {cases} cases, follow-up strategy '{strategy}', {seconds:.0f} s", "",
             "Risk (target: urgent 100 %, distress >= 90 %, false positives <= 5 %)",
             f"  urgent recall           {_pct(*r['urgent_recall'])}",
             f"  distress recall         {_pct(*r['distress_recall'])}",
             f"  false positives, urgent {_pct(*r['urgent_false_positives'])}",
             f"  false positives, distress {_pct(*r['distress_false_positives'])}",
             f"  hard negatives flagged  {_pct(*r['hard_negative_false_positives'])}",
             "", "Follow-ups (target: 0 re-asks, 0 copied examples, 0 unknown names, 0 unsafe quotes)",
             f"  asked                   {f['count']}  by source: "
             + ", ".join(f"{k} {v}" for k, v in sorted(f["by_source"].items())),
             f"  re-asks                 {len(f['reasks'])}",
             f"  copied examples         {len(f['copied_examples'])}",
             f"  unknown names or orgs   {len(f['unknown_names'])}",
             f"  closed or not one question {len(f['closed_or_not_one_question'])}",
             f"  quotes of flagged, injected or abusive text {len(f['unsafe_quotes'])}",
             f"  relevance: specific     {_pct(*f['specific'])} of follow-ups after typed answers",
             f"  relevance: lift         {f['lift']:+.3f} (cosine to own answer minus to other answers)",
             f"  latency                 p50 {f['latency_p50'] * 1000:.0f} ms, p95 {f['latency_p95'] * 1000:.0f} ms"
             " (target p95 <= 500 ms)",
             "", "Summaries (target: 0 unsupported content words)",
             f"  summaries               {s['count']}, mean {s['mean_words']:.0f} words",
             f"  words not in the person's text {s['unsupported_words']}",
             f"  lines not ending a sentence {len(s['unfinished_lines'])}",
             "", "Literature (target: theme overlap >= 70 % when a card is offered)",
             f"  offered                 {_pct(*lit['offered'])} of reflections",
             f"  theme overlap           {_pct(*lit['theme_overlap'])}",
             f"  card on the case's list {_pct(*lit['on_the_list'])}",
             f"  silent when nothing fits {_pct(*lit['silent_when_none_fits'])}",
             f"  offered when a card fits {_pct(*lit['offered_when_one_fits'])}",
             f"  most offered            " + ", ".join(f"{c} {n}" for c, n in lit["most_offered"])]
    for threshold, lit_t in results.get("literature_sweep", []):
        lines.append(f"  at {threshold:.3f}: offered {_pct(*lit_t['offered'])}, on the list "
                     f"{_pct(*lit_t['on_the_list'])}, theme overlap {_pct(*lit_t['theme_overlap'])}, "
                     f"silent when nothing fits {_pct(*lit_t['silent_when_none_fits'])}")
    if detail:
        for title, items in (("urgent missed", r["urgent_missed"]), ("distress missed", r["distress_missed"]),
                             ("urgent false positives", r["urgent_false_positive_messages"]),
                             ("distress false positives", r["distress_false_positive_messages"]),
                             ("re-asks", f["reasks"]), ("copied", f["copied_examples"]),
                             ("unknown names", f["unknown_names"]),
                             ("closed", f["closed_or_not_one_question"]), ("unsafe quotes", f["unsafe_quotes"]),
                             ("summary words not written", s["unsupported"]),
                             ("offered when none fits", lit["offered_when_none_fits"])):
            if items:
                lines += ["", f"{title}:"] + [f"  {i}" for i in items]
    return "\n".join(lines)


def blind_sheet(runs: list[CaseRun], seed: int = 7) -> tuple[list[dict], list[dict]]:
    """Follow-ups shuffled with their source hidden (to grade), and the key (to unblind after)."""
    items = [a for r in runs for a in r.asked]
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    sheet, key = [], []
    for n, i in enumerate(order, 1):
        a = items[i]
        # What they wrote before this answer, so a reader can judge a question that draws on it.
        before = a.source_text.rsplit(a.answer, 1)[0].strip() if a.answer in a.source_text else a.source_text
        sheet.append({"n": n, "earlier": before, "step_question": a.step_question, "answer": a.answer,
                      "follow_up": a.question})
        key.append({"n": n, "case": a.case, "source": a.source, **{k: v for k, v in asdict(a).items()
                                                                    if k in ("step",)}})
    return sheet, key
