"""`spanner train`: check the training set, train the follow-up adapter, convert it, write its manifest.

Reproducible: the same training set, base model, template, seed and settings give the same adapter
(torch on the CPU, one fixed order per epoch). `--dry-run` goes the whole way on 20 examples into
data/train/dry-run, so the route can be checked in minutes without touching models/.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from bot.config import ROOT, Config
from bot.engine.prompt_data import load_prompt_data
from bot.package_files import sha256_of
from bot.retrieval.cards import load_cards

from .dataset import Checker, eval_texts, load_examples, near_duplicates
from .train import (ADAPTER_NAME, MANIFEST_NAME, Trainer, TrainError, TrainSettings, convert, prepare,
                    sha256_folder)

TRAINING = ROOT / "training" / "followups"
EVAL = ROOT / "eval"
MODELS = ROOT / "models"
NEAR_DUPLICATE = 0.9  # cosine similarity of MiniLM vectors at or above which an answer echoes a held-out one


def run_train(config: Config, *, dry_run: bool = False, resume: bool = False, epochs: int | None = None,
              seed: int | None = None, limit: int | None = None, out: Path | None = None,
              training: Path = TRAINING) -> int:
    from bot.compose import build_embedder, model_path_for

    started = time.monotonic()
    prompts = load_prompt_data(config.paths.prompts_dir)
    checker = Checker(prompts, config.reflection.protocol)
    examples = load_examples(training)
    settings = TrainSettings(threads=config.llm.threads)
    if epochs is not None:
        settings.epochs = epochs
    if seed is not None:
        settings.seed = seed
    if dry_run:
        settings.epochs, settings.limit = 1, limit or 20
    elif limit:
        settings.limit = limit
    prepared = prepare(examples, prompts, checker, settings)
    print(f"training set: {len(examples)} examples checked by the product's rules "
          f"({len(prepared.train)} to train, {len(prepared.heldout)} held out for the loss)")

    embedder = build_embedder(config, threads=config.llm.threads)
    cards = {c.card_id for c in load_cards(config.paths.knowledge_dir)}
    held_out = eval_texts(EVAL, set(checker.steps), cards)
    echoes = near_duplicates(examples, held_out, embedder.embed_array, NEAR_DUPLICATE)
    if echoes:
        first = echoes[0]
        raise TrainError(f"{len(echoes)} training answers are near-duplicates of held-out eval cases "
                         f"(first: {first[0]} ~ {first[1]}, similarity {first[2]:.2f}); fix: rewrite them")
    print(f"near-duplicates of eval/ answers (similarity >= {NEAR_DUPLICATE}): none")

    base = model_path_for(config)
    if not base.is_file():
        raise TrainError(f"no base model at {base}; fix: run `spanner setup` first")
    work = config.data_dir / "train" / ("dry-run" if dry_run else "run")
    target_dir = Path(out) if out else (work / "out" if dry_run else MODELS)
    trainer = Trainer(base, work, settings)
    result = trainer.run(prepared, resume=resume)
    adapter = target_dir / ADAPTER_NAME
    t0 = time.monotonic()
    convert(Path(result["adapter_dir"]), Path(result["base_dir"]), adapter, config.data_dir / "cache")
    template = config.paths.prompts_dir / "templates" / "followup_adapter.toml"
    manifest = {
        "adapter": ADAPTER_NAME,
        "adapter_sha256": sha256_of(adapter),
        "adapter_bytes": adapter.stat().st_size,
        "base_model": base.name,
        "base_model_sha256": result["base_sha256"],
        "training_set_sha256": sha256_folder(training),
        "template_sha256": sha256_of(template),
        "seed": settings.seed,
        "settings": asdict(settings),
        "examples": prepared.counts,
        "training": {k: v for k, v in result.items() if k not in ("base_dir", "adapter_dir", "base_sha256")},
        "convert_seconds": round(time.monotonic() - t0, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    old = target_dir / MANIFEST_NAME
    if old.is_file():  # keep the eval numbers recorded for an adapter with the same bytes
        previous = json.loads(old.read_text(encoding="utf-8"))
        if previous.get("adapter_sha256") == manifest["adapter_sha256"] and "eval" in previous:
            manifest["eval"] = previous["eval"]
    (target_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"adapter: {adapter} ({manifest['adapter_bytes'] / 1e6:.1f} MB), manifest: {target_dir / MANIFEST_NAME}")
    print(f"wall time: {manifest['wall_seconds']:.0f} s")
    if dry_run:
        _show(base, adapter, prepared.heldout or prepared.train, config.llm.threads)
    return 0


def _show(base: Path, adapter: Path, pairs: list[tuple[str, str]], threads: int) -> None:
    """One question from the adapter over the Q4_K_M model, to show the route works end to end."""
    from llama_cpp import Llama

    from bot.llm.llama_generator import _silence_llama_cpp
    _silence_llama_cpp()  # llama.cpp's load notices would bury the one line this prints
    llm = Llama(model_path=str(base), lora_path=str(adapter), n_ctx=512, n_threads=threads, verbose=False, seed=1)
    prompt, target = pairs[0]
    text = llm.create_completion(prompt, max_tokens=40, temperature=0.0, stop=["\n"])["choices"][0]["text"]
    print(f"the adapter over the packaged model wrote: {text.strip()!r} (the example's: {target.strip()!r})")
    llm.close()


__all__ = ["run_train", "TrainError"]
