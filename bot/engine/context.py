"""What every flow in the engine shares: the ports, the prompt data, settings and model helpers.

Flows (reflection, journal commands) receive one Context rather than a dozen
arguments. The model helpers here are the single place where generated text
meets the guard and the curated fallbacks.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .care import Care
from .followups import FollowUp, FollowUpPicker, adapter_variables
from .guard import Guard
from .ports import (Charts, Clock, Deidentifier, Embedder, FormPrinter, Generator, Journal, Lifecycle, Literature,
                    Mentoring, Notices, People, Sharing, Transcriber)
from .prompt_data import PromptData, Step
from .records import Reply
from .risk import RiskScreen
from .search_index import SearchIndex, embedding_text, passages
from .unit import current_unit

log = logging.getLogger(__name__)

#: The time zone of the user whose event is being handled.
current_tz: ContextVar[ZoneInfo | None] = ContextVar("current_tz", default=None)
#: Where a transport wants partial model text while it is generated (to show it progressively).
current_partial_sink: ContextVar[Callable[[str], None] | None] = ContextVar("current_partial_sink", default=None)


@dataclass(frozen=True)
class Settings:
    protocol: str = "after_meeting"
    followups: bool = True
    followup_strategy: str = "curated"  # "curated", "model", "adapter" or "pool"
    summary_strategy: str = "built"  # "built" or "model"
    offer_literature: bool = True
    max_message_chars: int = 50_000
    model_input_chars: int = 1_500
    timezone: str = "Europe/London"
    data_dir_label: str = "the data directory"
    idle_hours: float = 12.0
    search_min_similarity: float = 0.29  # calibrated with search_margin: see bot.config.SearchConfig
    search_margin: float = 0.07
    search_idle_minutes: float = 30.0
    search_results: int = 8
    journal_page: int = 10
    voice_max_seconds: float = 300.0  # longest voice note transcribed
    voice_max_bytes: int = 20 * 1024 * 1024  # largest audio file taken


@dataclass
class Context:
    store: Journal
    generator: Generator | None
    literature: Literature | None
    embedder: Embedder | None
    prompts: PromptData
    settings: Settings
    clock: Clock
    sharing: Sharing | None = None
    lifecycle: Lifecycle | None = None
    mentoring: Mentoring | None = None
    people: People | None = None
    notices: Notices | None = None
    tick: Callable[[], object] | None = None  # run the scheduler now (set at composition)
    safety_banks: dict | None = None  # the safety examples, embedded once by composition
    charts: Charts | None = None  # draws /insights charts (bot/charts.py); None: text only
    deidentifier: Deidentifier | None = None  # finds identifiers before a share or an export (loads lazily)
    printer: FormPrinter | None = None  # portfolio forms as PDF
    transcriber: Transcriber | None = None  # None: voice notes are switched off
    guard: Guard = field(init=False)
    care: Care = field(init=False)
    picker: FollowUpPicker = field(init=False)
    search_index: SearchIndex = field(init=False)
    # Users already told that the model is unavailable: we say so once, not every turn.
    _told_unavailable: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.guard = Guard(self.prompts.guard, avoid=self.prompts.known_questions())
        screen = RiskScreen(self.prompts.safety, self.embedder, self.safety_banks)
        self.care = Care(screen)
        self.picker = FollowUpPicker(self.prompts.followups.quote, self.guard, self.embedder, screen)
        self.default_tz = ZoneInfo(self.settings.timezone)
        # Search reads the committed journal (never an event's buffered writes) and lives in memory only.
        self.search_index = SearchIndex(lambda: self.store, self.embedder.embed if self.embedder else None,
                                        idle_seconds=self.settings.search_idle_minutes * 60)

    @property
    def journal(self) -> Journal:
        """The journal as the event being handled sees it: writes buffered until its commit."""
        return current_unit.get() or self.store

    @property
    def tz(self) -> ZoneInfo:
        return current_tz.get() or self.default_tz

    def say(self, key: str, **values: object) -> str:
        return self.prompts.say(key, **values)

    def roles(self, user: str) -> tuple[str, ...]:
        """The roles this person holds (a person may hold several)."""
        return self.people.roles(user) if self.people is not None else ("spanner",)

    def now(self) -> datetime:
        return self.clock.now()

    def local(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%a %d %b %Y %H:%M")

    def local_day(self, moment: datetime) -> str:
        """A day, or a day and time when the moment isn't midnight (a pause until a date is a day)."""
        local = moment.astimezone(self.tz)
        return local.strftime("%a %d %b %Y") if (local.hour, local.minute) == (0, 0) else self.local(moment)

    def is_idle(self, touched_iso: str) -> bool:
        touched = datetime.fromisoformat(touched_iso)
        return self.now() - touched > timedelta(hours=self.settings.idle_hours)

    def trim(self, text: str) -> str:
        """The model sees at most the last part of a long answer: enough for one question."""
        limit = self.settings.model_input_chars
        return text if len(text) <= limit else "…" + text[-limit:]

    def embed(self, text: str) -> list[float] | None:
        vectors = self._embed([text]) if text.strip() else None
        return vectors[0] if vectors else None

    def embed_entry(self, entry) -> list[list[float]] | None:
        """The entry's vector, then one per passage (search shows the passage closest to a query)."""
        text = embedding_text(entry)
        return self._embed([text] + passages(entry)) if text.strip() else None

    def _embed(self, texts: list[str]) -> list[list[float]] | None:
        if self.embedder is None:
            return None
        try:
            return self.embedder.embed(texts)
        except Exception as exc:  # embedding is a nicety: never lose an entry over it
            log.warning("embedding failed: %s", type(exc).__name__)
            return None

    def _guarded_sink(self, source: str) -> Callable[[str], None] | None:
        """Pass partial text on only while it passes the content checks; once one fails, stop."""
        sink = current_partial_sink.get()
        if sink is None:
            return None
        failed = False

        def forward(text: str) -> None:
            nonlocal failed
            failed = failed or not self.guard.check_partial(text, source).ok
            if not failed:
                sink(text)
        return forward

    async def _generate(self, user: str, task: str, variables: dict[str, str],
                        notices: list[Reply], source: str = "") -> str | None:
        if self.generator is None:
            return None  # the model is switched off in the config: a choice, not a problem to announce
        else:
            try:
                outcome = await self.generator.generate(user, task, variables,
                                                        on_partial=self._guarded_sink(source))
                status, text = outcome.status, outcome.text
            except Exception as exc:  # a model bug must never break a reflection
                log.warning("generation raised %s", type(exc).__name__)
                status, text = "failed", ""
        if status != "ok":
            log.info("model %s for a %s: curated question used", status, task)  # the status only, never text
            if user not in self._told_unavailable:
                self._told_unavailable.add(user)
                notices.append(Reply(self.say("model_unavailable")))
            return None
        return text

    async def followup(self, user: str, step: Step, answer: str, source: str, asked: list[str],
                       notices: list[Reply], earlier: dict[str, str] | None = None,
                       pick: FollowUp | None = None) -> FollowUp:
        """The one follow-up after an answer (typed, or a button's label), by the configured strategy.

        `pick` is the curated choice when the caller has one (after a button); never fails.
        """
        pick = pick or self.picker.for_text(step, answer, source, asked)
        strategy = self.settings.followup_strategy
        pressed = answer in step.options
        if strategy == "curated" or (strategy == "model" and pressed):
            return pick  # the base model's few-shot text was never measured after a button
        if strategy == "model":
            task, variables = "followup", {"question": step.question, "answer": self.trim(answer)}
        else:  # "adapter" and "pool": the layout Spanner's adapter was trained on
            task = "followup_adapter"
            variables = adapter_variables(step.question, answer, earlier or {}, self.settings.model_input_chars)
        text = await self._generate(user, task, variables, notices, source)
        text = (text or "").strip()
        if not text or text in asked or not self.guard.check_followup(text, source, step.question).ok:
            return pick
        model = FollowUp(text, "model")
        if strategy in ("model", "adapter"):
            return model
        # After a button the label says little: rank against everything they wrote so far.
        return self.picker.rank([pick, model], source if pressed else answer)[0]

    async def summary(self, user: str, built: str, answers_block: str, source: str,
                      notices: list[Reply]) -> tuple[str, bool]:
        """The built summary, or (when configured) the model's rephrasing if it adds no word of its own."""
        if self.settings.summary_strategy != "model":
            return built, False
        text = await self._generate(user, "summary", {"answers": answers_block}, notices, source)
        if text is not None:
            text = self.guard.tidy_summary(text)
            if self.guard.check_summary(text, source).ok:
                return text, True
        return built, False
