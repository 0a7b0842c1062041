"""Patterns across a person's own entries, each statement resting on the entries that show it.

What /insights reports, from the after-meeting reflection's answers and the entries' tags:
- how they engaged (the options of the "engagement" step), per period;
- strategic or tactical (the "level" step);
- how they felt they were seen (the "stance" step), per period;
- themes that recur (tags, which hold the chosen options and the literature cards' themes);
- the people and roles they mention most, spelled as they wrote them;
- the next steps they set, and which ones a later entry mentions again.

Nothing is inferred that no entry supports: an option counts for an entry
when the person pressed it or wrote its words (all of them, inflected or not:
"persuaded" counts for "Persuading"); a next step counts as picked up only
when a later entry shares its content words. Every statement keeps, for each
entry it cites, the words of that entry it rests on (`evidence`), so a test
can check each one. The words a person reads are in prompts/messages.toml.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache

from .prompt_data import Protocol
from .records import Entry
from .search_index import own_parts
from .wording import STOPWORDS, content_words, singular, stem, words

#: The steps of the reflection protocol that insights read (prompts/reflection/after_meeting.toml).
APPROACH, LEVEL, STANCE, NEXT_STEP = "engagement", "level", "stance", "next_step"
#: A journal spanning more than this many days is charted by month, else by week.
MONTHS_AFTER_DAYS = 62


@dataclass(frozen=True)
class Cited:
    """One thing counted, with the entries it rests on and, per entry, the words that show it."""

    label: str
    evidence: dict[int, str]  # entry number -> the entry's own words that support the label

    @property
    def numbers(self) -> list[int]:
        return sorted(self.evidence)


@dataclass(frozen=True)
class PickedUp:
    """A next step set in one entry and mentioned again in a later one."""

    step: str
    set_in: int
    later: int | None  # None: no later entry mentions it
    shared: tuple[str, ...] = ()  # the later entry's words it shares with the step


@dataclass
class Insights:
    entries: int
    since: date | None
    by_month: bool = False  # periods are months (else weeks, by their Monday)
    periods: list[str] = field(default_factory=list)
    approaches: list[Cited] = field(default_factory=list)
    approach_series: dict[str, list[int]] = field(default_factory=dict)
    levels: list[Cited] = field(default_factory=list)
    stances: list[Cited] = field(default_factory=list)
    stance_series: dict[str, list[int]] = field(default_factory=dict)
    themes: list[Cited] = field(default_factory=list)
    theme_series: dict[str, list[int]] = field(default_factory=dict)
    people: list[Cited] = field(default_factory=list)
    next_steps: list[PickedUp] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.approaches or self.levels or self.stances or self.themes or self.people
                    or self.next_steps)


def _answer(entry: Entry, step_id: str) -> str:
    for a in entry.answers:
        if a.step_id == step_id and not a.skipped:
            return a.answer.strip()
    return ""


def _option_signature(label: str) -> set[str]:
    return {stem(w) for w in words(label) if w.lower() not in STOPWORDS} or {stem(w) for w in words(label)}


def options_named(answer: str, options: tuple[str, ...]) -> dict[str, str]:
    """Option -> the words of the answer that name it: the option pressed, or all of its words written."""
    if not answer:
        return {}
    for option in options:
        if answer.casefold() == option.casefold():
            return {option: answer}
    written = {}
    for w in words(answer):
        written.setdefault(stem(w), w)
    found = {}
    for option in options:
        signature = _option_signature(option)
        if signature and signature <= set(written):
            found[option] = " ".join(written[s] for s in sorted(signature))
    return found


def mentions(text: str, roles: tuple[str, ...], common_capitalised: tuple[str, ...]) -> list[str]:
    """People and roles in `text`, as written: role words ("ward", "finance director") and capitalised
    names not at the start of a sentence ("Priya"); neighbours join into one ("ward manager", "Dr Okafor")."""
    tokens = list(words(text))
    lowered = [singular(t) for t in tokens]
    flagged = [False] * len(tokens)
    by_first = _role_index(tuple(roles))
    for i, first in enumerate(lowered):
        for seq in by_first.get(first, ()):
            if tuple(lowered[i:i + len(seq)]) == seq:
                flagged[i:i + len(seq)] = [True] * len(seq)
    allowed = {w.lower() for w in common_capitalised} | STOPWORDS
    starts = _sentence_starts(text, tokens)
    for i, token in enumerate(tokens):
        if token[:1].isupper() and i not in starts and token.lower() not in allowed and len(token) > 1:
            flagged[i] = True
    found: list[str] = []
    run: list[str] = []
    for token, flag in zip(tokens + [""], flagged + [False]):
        if flag:
            run.append(token)
        elif run:
            found.append(" ".join(run))
            run = []
    return found


@lru_cache(maxsize=4)
def _role_index(roles: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
    """Role phrases as singular word sequences, by their first word (so a text is read once)."""
    out: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for role in roles:
        seq = tuple(singular(w) for w in words(role))
        if seq:
            out[seq[0]].append(seq)
    return dict(out)


def _sentence_starts(text: str, tokens: list[str]) -> set[int]:
    """Indexes of tokens that begin a sentence (their capital says nothing about a name)."""
    starts, pos, at_start = set(), 0, True
    for i, token in enumerate(tokens):
        found = text.find(token, pos)
        between = text[pos:found] if found >= 0 else ""
        if any(ch in between for ch in ".!?\n"):
            at_start = True
        if at_start:
            starts.add(i)
        at_start = False
        pos = found + len(token) if found >= 0 else pos
    return starts


def _period_of(moment: datetime, zone: tzinfo | None, by_month: bool) -> date:
    day = (moment.astimezone(zone) if zone else moment).date()
    return day.replace(day=1) if by_month else day - timedelta(days=day.weekday())


def _periods(first: date, last: date, by_month: bool) -> list[date]:
    out, current = [], first
    while current <= last:
        out.append(current)
        if by_month:
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            current += timedelta(days=7)
    return out


def _ranked(counted: dict[str, dict[int, str]], order: list[str] | None = None) -> list[Cited]:
    items = [Cited(label, ev) for label, ev in counted.items() if ev]
    if order is not None:
        return sorted(items, key=lambda c: order.index(c.label))
    return sorted(items, key=lambda c: (-len(c.evidence), c.label.casefold()))


def _series(cited: list[Cited], entries: dict[int, Entry], periods: list[date], zone, by_month: bool,
            ) -> dict[str, list[int]]:
    index = {p: i for i, p in enumerate(periods)}
    out = {}
    for c in cited:
        counts = [0] * len(periods)
        for n in c.evidence:
            counts[index[_period_of(entries[n].created_at, zone, by_month)]] += 1
        out[c.label] = counts
    return out


def build(entries: list[Entry], protocol: Protocol | None, roles: tuple[str, ...],
          common_capitalised: tuple[str, ...], since: date | None = None, zone: tzinfo | None = None,
          themes_shown: int = 6, people_shown: int = 8) -> Insights:
    """Everything /insights says about these entries (a person's own), from `since` (a local date) on."""
    def local_day(e: Entry) -> date:
        return (e.created_at.astimezone(zone) if zone else e.created_at).date()

    chosen = sorted((e for e in entries if e.created_at is not None and (since is None or local_day(e) >= since)),
                    key=lambda e: (e.created_at, e.number))
    out = Insights(entries=len(chosen), since=since)
    if not chosen:
        return out
    steps = {s.id: s for s in protocol.steps} if protocol is not None else {}
    by_number = {e.number: e for e in chosen}

    def counted_options(step_id: str) -> list[Cited]:
        step = steps.get(step_id)
        if step is None or not step.options:
            return []
        counted: dict[str, dict[int, str]] = {o: {} for o in step.options}
        for e in chosen:
            for option, said in options_named(_answer(e, step_id), tuple(step.options)).items():
                counted[option][e.number] = said
        return _ranked(counted, list(step.options))

    out.approaches = counted_options(APPROACH)
    out.levels = counted_options(LEVEL)
    out.stances = counted_options(STANCE)

    # Themes: tags on two entries or more, apart from the options already counted above.
    option_tags = frozenset(o.casefold() for s in steps.values() for o in s.options)
    tagged: dict[str, dict[int, str]] = defaultdict(dict)
    for e in chosen:
        for tag in e.tags:
            if tag.casefold() not in option_tags:
                tagged[tag.casefold()][e.number] = tag
    out.themes = [c for c in _ranked(tagged) if len(c.evidence) >= 2][:themes_shown]

    # People and roles, grouped by their singular lower-case form, shown as most often written.
    seen: dict[str, dict[int, str]] = defaultdict(dict)
    spelled: dict[str, Counter] = defaultdict(Counter)
    for e in chosen:
        for said in mentions(_own_text(e, option_tags), roles, common_capitalised):
            key = " ".join(singular(w) for w in words(said))
            seen[key].setdefault(e.number, said)
            spelled[key][said] += 1
    people = [Cited(spelled[k].most_common(1)[0][0], ev) for k, ev in seen.items()]
    out.people = sorted(people, key=lambda c: (-len(c.evidence), c.label.casefold()))[:people_shown]

    # Next steps, and the first later entry that shares their content words.
    for i, e in enumerate(chosen):
        step = _answer(e, NEXT_STEP)
        if not step:
            continue
        wanted = {stem(w): w for w in content_words(step)}
        if not wanted:
            continue
        need = min(2, len(wanted))
        found = PickedUp(step, e.number, None)
        for later in chosen[i + 1:]:
            have = {}
            for w in content_words(_own_text(later)):
                have.setdefault(stem(w), w)
            shared = [have[s] for s in wanted if s in have]
            if len(shared) >= need:
                found = PickedUp(step, e.number, later.number, tuple(shared))
                break
        out.next_steps.append(found)

    by_month = out.by_month = (local_day(chosen[-1]) - local_day(chosen[0])).days > MONTHS_AFTER_DAYS
    periods = _periods(_period_of(chosen[0].created_at, zone, by_month),
                       _period_of(chosen[-1].created_at, zone, by_month), by_month)
    out.periods = [p.strftime("%b %Y") if by_month else p.strftime("%d %b") for p in periods]
    out.approach_series = _series(out.approaches, by_number, periods, zone, by_month)
    out.stance_series = _series(out.stances, by_number, periods, zone, by_month)
    out.theme_series = _series(out.themes, by_number, periods, zone, by_month)
    return out


def _own_text(entry: Entry, options: frozenset[str] = frozenset()) -> str:
    """What the person wrote in the entry; a button they pressed (an option's label) is not their words."""
    return "\n".join(p for p in own_parts(entry) if p.strip().casefold() not in options)
