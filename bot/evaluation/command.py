"""`spanner eval`: compose Spanner in a throwaway data directory, run the dev set, print the measures.

The dev set lives in eval/cases/ (not part of the test run). The real engine, the real embedder
and the real literature index are used; the real model too whenever the strategy asks for it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

from bot.config import ROOT, Config
from bot.retrieval.cards import load_cards

from .cases import load_cases
from .report import Measures, blind_sheet, render
from .runner import CaseRunner

DEFAULT_CASES = ROOT / "eval" / "cases"


def _overrides(config: Config, data_dir: Path, strategy: str | None, summary: str | None,
               floor: float | None) -> Config:
    reflection = config.reflection.model_copy(update={k: v for k, v in (("followup_strategy", strategy),
                                                                         ("summary_strategy", summary)) if v})
    llm = config.llm
    if llm.model_path is None:
        from bot.llm.model_files import default_model_path
        llm = llm.model_copy(update={"model_path": default_model_path(config.data_dir)})
    paths = config.paths.model_copy(update={"data_dir": data_dir})
    retrieval = config.retrieval if floor is None else config.retrieval.model_copy(update={"min_similarity": floor})
    return config.model_copy(update={"reflection": reflection, "llm": llm, "paths": paths, "retrieval": retrieval})


def run_eval(config: Config, *, cases_dir: Path | None = None, strategy: str | None = None,
             summary: str | None = None, only: str | None = None, detail: bool = False,
             json_path: Path | None = None, blind_path: Path | None = None, sweep: bool = False,
             record: bool = False) -> int:
    from bot.compose import build_app

    protocol = config.reflection.protocol
    cards = load_cards(config.paths.knowledge_dir)
    with tempfile.TemporaryDirectory(prefix="spanner-eval-") as tmp:
        data = Path(tmp) / "data"
        chroma = config.data_dir / "chroma"
        if chroma.is_dir():  # the literature index as built by setup; else it is built here
            shutil.copytree(chroma, data / "chroma")
        if (config.data_dir / "cache").is_dir():  # the safety examples, embedded by setup
            shutil.copytree(config.data_dir / "cache", data / "cache")
        # A sweep runs with no literature threshold and re-applies each threshold afterwards.
        run_config = _overrides(config, data, strategy, summary, 0.0 if sweep else None)
        app = build_app(run_config)
        try:
            if app.literature is not None and app.literature.count() == 0:
                app.literature.ingest(cards)
            proto = app.prompts.protocols[protocol]
            cases = load_cases(cases_dir or DEFAULT_CASES, {s.id for s in proto.steps}, {c.card_id for c in cards})
            if only:
                cases = [c for c in cases if c.kind == only or c.id == only]
            runner = CaseRunner(app, protocol)
            started = time.perf_counter()
            loop = asyncio.new_event_loop()
            try:
                runs = [loop.run_until_complete(runner.run(c)) for c in cases]
            finally:
                loop.close()
            seconds = time.perf_counter() - started
            ctx = app.engine.ctx
            examples = [line.split(":", 1)[1].strip() for t in app.prompts.templates.values()
                        for line in t.completion.splitlines() if line.startswith("Question:")
                        and line.split(":", 1)[1].strip()]
            titles = {w for s in proto.steps for w in s.title.split()} | set(ctx.say("summary_own_part").split())
            embed = app.embedder.embed_array if app.embedder is not None else None
            measures = Measures(runs, ctx.guard, embed, examples, list(app.prompts.followups.quote.never),
                                ctx.care.screen, {c.card_id: tuple(c.themes) for c in cards},
                                {f"{c.title}, {c.citation}": c.card_id for c in cards},
                                {w.lower().strip(":") for w in titles})
            results = measures.all()
            used = ctx.settings.followup_strategy  # curated when the asked-for adapter was refused
            for note in app.notes:
                print(note)
            if sweep:
                results["literature_sweep"] = measures.literature_sweep()
        finally:
            app.close()
    print(render(results, used, len(cases), seconds, detail))
    if record:
        _record(config, used, cases_dir or DEFAULT_CASES, len(cases), results["followups"])
    if json_path is not None:
        Path(json_path).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    if blind_path is not None:
        sheet, key = blind_sheet(runs)
        Path(blind_path).write_text(json.dumps(sheet, indent=2, ensure_ascii=False), encoding="utf-8")
        Path(str(blind_path) + ".key.json").write_text(json.dumps(key, indent=2), encoding="utf-8")
    return 0


def _record(config: Config, strategy: str, cases_dir: Path, n_cases: int, f: dict) -> None:
    """Keep this strategy's follow-up numbers in the adapter's manifest, beside what it was trained on."""
    from bot.llm.adapter_files import manifest_path

    path = manifest_path(config.llm.adapter_path)
    if not path.is_file():
        print(f"no adapter manifest at {path}: nothing recorded")
        return
    manifest = json.loads(path.read_text(encoding="utf-8"))
    try:
        cases = str(Path(cases_dir).resolve().relative_to(ROOT))
    except ValueError:
        cases = str(cases_dir)
    manifest.setdefault("eval", {})[strategy] = {
        "cases": cases, "n_cases": n_cases, "followups": f["count"], "by_source": f["by_source"],
        "reasks": len(f["reasks"]), "copied_examples": len(f["copied_examples"]),
        "unknown_names": len(f["unknown_names"]), "closed_or_not_one_question": len(f["closed_or_not_one_question"]),
        "unsafe_quotes": len(f["unsafe_quotes"]), "specific": list(f["specific"]),
        "lift": None if f["lift"] is None else round(f["lift"], 3),
        "latency_p50_ms": round(f["latency_p50"] * 1000), "latency_p95_ms": round(f["latency_p95"] * 1000)}
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"recorded under eval.{strategy} in {path}")
