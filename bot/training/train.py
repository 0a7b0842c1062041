"""`spanner train`: a LoRA adapter for the packaged Gemma 3 270M, trained on training/followups/ on the CPU.

The route, step by step (each verified on a 2-core machine with no GPU):

1. Load the packaged GGUF with transformers (dequantised to fp32) and its tokenizer.
2. Save that model once as an fp32 folder: llama.cpp's LoRA converter needs it as `--base`.
3. Train LoRA (rank 16 on the seven projections) on our examples, the loss taken on the follow-up's
   tokens only. Logits are computed only at those positions (`logits_to_keep`): Gemma's 262k-word
   output layer costs more than the rest of the model, and this halves the time for the same loss.
4. After each epoch: the loss on held-out examples, and a checkpoint (`--resume` goes on from it).
5. Convert the adapter to a GGUF LoRA with `convert_lora_to_gguf.py` from the llama.cpp sources in
   the llama-cpp-python source package (taken from the package registry once, cached in data/).
6. Write the adapter and its manifest (hashes of the base model, the training set and the prompt
   template; seed, settings, losses, times) into models/.

torch, transformers, peft and gguf come from the optional extra: `pip install -e .[train]`. Nothing
else in Spanner imports this module's dependencies.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.engine.followups import adapter_variables
from bot.engine.prompt_data import PromptData
from bot.package_files import sha256_of

from .dataset import Checker, Example, check_set, coverage

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTER_NAME = "followup-lora.gguf"
MANIFEST_NAME = "followup-lora.json"


class TrainError(Exception):
    """Training cannot start or finish: the message says why and what to do."""


@dataclass
class TrainSettings:
    seed: int = 1234
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    learning_rate: float = 2e-4
    epochs: int = 2
    batch_size: int = 4
    threads: int = 2
    heldout_share: float = 0.05
    warmup_share: float = 0.05
    limit: int | None = None  # train on only this many examples (the dry run uses 20)


@dataclass
class Prepared:
    train: list[tuple[str, str]]
    heldout: list[tuple[str, str]]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def sha256_folder(folder: Path, pattern: str = "*.jsonl") -> str:
    """One hash over the files' names and bytes, in name order: the training set's identity."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).glob(pattern)):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def example_text(prompts: PromptData, checker: Checker, ex: Example) -> tuple[str, str]:
    """(prompt, target) for one example, through the same template and variables the product uses."""
    template = prompts.templates["followup_adapter"]
    order = [s.id for s in checker.protocol.steps]
    earlier = {k: ex.earlier[k] for k in order if k in ex.earlier and k != ex.step}
    question = checker.steps[ex.step].question
    prompt = template.completion.format(**adapter_variables(question, ex.answer, earlier))
    return prompt, " " + ex.followup.strip() + "\n"


def prepare(examples: list[Example], prompts: PromptData, checker: Checker, settings: TrainSettings) -> Prepared:
    """Check every example, then split off a seeded held-out share for the per-epoch loss."""
    problems = check_set(examples, checker)
    if problems:
        raise TrainError(f"{len(problems)} training examples break the product's rules, first: {problems[0]}; "
                         "fix: run `python -m bot.training` and correct them")
    rng = random.Random(settings.seed)
    order = list(examples)
    rng.shuffle(order)
    if settings.limit:
        order = order[: settings.limit]
    n_held = max(1, round(len(order) * settings.heldout_share)) if len(order) >= 10 else 0
    texts = [example_text(prompts, checker, ex) for ex in order]
    counts = {name: dict(sorted(c.items())) for name, c in coverage(order).items()}
    return Prepared(train=texts[n_held:], heldout=texts[:n_held], counts=counts)


# ----- the converter ------------------------------------------------------------------------------

def converter(cache: Path) -> Path:
    """convert_lora_to_gguf.py from the llama.cpp sources matching the installed llama-cpp-python.

    The wheel carries no converter; the source package on the registry does. It is fetched once with
    pip (the package registry, never a model hub) and only its converter and gguf-py are kept.
    """
    from importlib.metadata import version

    ver = version("llama_cpp_python")
    home = Path(cache) / f"llama.cpp-{ver}"
    script = home / "convert_lora_to_gguf.py"
    if script.is_file():
        return script
    tmp = Path(cache) / f"sdist-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                               f"llama-cpp-python=={ver}", "-d", str(tmp)], capture_output=True, text=True)
        tarballs = list(tmp.glob("*.tar.gz"))
        if done.returncode != 0 or not tarballs:
            raise TrainError(f"could not fetch the llama-cpp-python {ver} source package for its LoRA converter "
                             f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no file'}); "
                             "fix: make the package registry reachable, or unpack it into " + str(home))
        keep = ("/vendor/llama.cpp/convert_lora_to_gguf.py", "/vendor/llama.cpp/convert_hf_to_gguf.py",
                "/vendor/llama.cpp/conversion/", "/vendor/llama.cpp/gguf-py/")
        staging = Path(cache) / f"staging-{os.getpid()}"
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                name = member.name
                if any(k in name for k in keep) and member.isfile():
                    rel = name.split("/vendor/llama.cpp/", 1)[1]
                    target = staging / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        staging.rename(home)  # whole or not at all, so a half-unpacked folder is never taken for a converter
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return script


# ----- training -------------------------------------------------------------------------------------

class Trainer:
    """One training run; heavy imports happen here, never when Spanner itself starts."""

    def __init__(self, base_gguf: Path, work: Path, settings: TrainSettings, progress: bool = True):
        try:
            import peft  # noqa: F401
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise TrainError(f"training needs the optional extra ({exc.name} is missing); "
                             "fix: pip install -e '.[train]'") from None
        self.base_gguf = Path(base_gguf)
        self.work = Path(work)
        self.settings = settings
        self.progress = progress

    def load(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(self.settings.threads)
        torch.manual_seed(self.settings.seed)
        folder, name = str(self.base_gguf.parent), self.base_gguf.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        return tokenizer, model

    def save_base(self, tokenizer, model, digest: str) -> Path:
        """The fp32 base folder the converter reads (`--base`), kept between runs of the same base (`digest`)."""
        base = self.work / "base-fp32"
        stamp = base / "source.sha256"
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return base
        shutil.rmtree(base, ignore_errors=True)
        # A model loaded from GGUF refuses save_pretrained while it still looks quantised.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(base)
        tokenizer.save_pretrained(base)
        stamp.write_text(digest)
        return base

    def encode(self, tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
        """(token ids, number of target tokens at the end) per example."""
        out = []
        for prompt, target in pairs:
            p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
            t = tokenizer(target, add_special_tokens=False)["input_ids"]
            out.append((p + t, len(t)))
        return out

    @staticmethod
    def batch(items: list[tuple[list[int], int]], pad_id: int):
        """Left-padded ids, attention mask, positions, and labels set only on the targets."""
        import torch

        length = max(len(ids) for ids, _ in items)
        keep = max(n for _, n in items) + 1  # logits needed from the token before the first target
        ids = torch.full((len(items), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), length), dtype=torch.long)
        labels = torch.full((len(items), keep - 1), -100, dtype=torch.long)
        for row, (seq, n_target) in enumerate(items):
            ids[row, length - len(seq):] = torch.tensor(seq)
            mask[row, length - len(seq):] = 1
            labels[row, keep - 1 - n_target:] = torch.tensor(seq[-n_target:])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids, mask, positions, labels, keep

    def loss(self, model, items, pad_id):
        import torch.nn.functional as F

        ids, mask, positions, labels, keep = self.batch(items, pad_id)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
        logits = logits[:, :-1, :]
        n = int((labels != -100).sum())
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                               ignore_index=-100, reduction="sum") / max(1, n), n

    @staticmethod
    def epoch_order(items: list[tuple[list[int], int]], seed: int, batch_size: int) -> list[int]:
        """A seeded shuffle, sorted by length within windows of 16 batches so a batch pads little."""
        order = list(range(len(items)))
        rng = random.Random(seed)
        rng.shuffle(order)
        window = batch_size * 16
        chunks = [sorted(order[i:i + window], key=lambda j: len(items[j][0]))
                  for i in range(0, len(order), window)]
        batches = [chunk[i:i + batch_size] for chunk in chunks for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)  # so the short batches are not all at the start of each window
        return [j for batch in batches for j in batch]

    def heldout_loss(self, model, items, pad_id) -> float:
        import torch

        if not items:
            return float("nan")
        model.eval()
        total, tokens = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(items), self.settings.batch_size):
                loss, n = self.loss(model, items[i:i + self.settings.batch_size], pad_id)
                total += float(loss) * n
                tokens += n
        model.train()
        return total / max(1, tokens)

    def run(self, prepared: Prepared, resume: bool = False) -> dict:
        import torch
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        from safetensors.torch import load_file
        from tqdm import tqdm

        s = self.settings
        started = time.monotonic()
        tokenizer, model = self.load()
        loaded = time.monotonic() - started
        base_sha256 = sha256_of(self.base_gguf)  # read once: it names the fp32 copy and goes in the manifest
        base_dir = self.save_base(tokenizer, model, base_sha256)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        train = self.encode(tokenizer, prepared.train)
        heldout = self.encode(tokenizer, prepared.heldout)
        model = get_peft_model(model, LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout,
                                                 target_modules=TARGET_MODULES, task_type="CAUSAL_LM"))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.learning_rate,
                                      weight_decay=0.0)
        steps_per_epoch = math.ceil(len(train) / s.batch_size)
        total_steps = steps_per_epoch * s.epochs
        warmup = max(1, int(total_steps * s.warmup_share))

        def rate(step: int) -> float:  # linear warm-up, then cosine down to a tenth
            if step < warmup:
                return (step + 1) / warmup
            done = (step - warmup) / max(1, total_steps - warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)

        checkpoints = self.work / "checkpoints"
        history: list[dict] = []
        first_epoch = 0
        if resume:
            done = sorted(checkpoints.glob("epoch-*/state.pt"), key=lambda p: int(p.parent.name.split("-")[1]))
            if done:
                last = done[-1].parent
                set_peft_model_state_dict(model, load_file(str(last / "adapter_model.safetensors")))
                state = torch.load(last / "state.pt", weights_only=False)
                optimiser.load_state_dict(state["optimiser"])
                scheduler.load_state_dict(state["scheduler"])
                history = state["history"]
                first_epoch = state["epoch"] + 1
                print(f"resuming after epoch {first_epoch} from {last}")
        model.train()
        for epoch in range(first_epoch, s.epochs):
            # The order of each epoch depends only on the seed and the epoch, so a resumed run matches.
            order = self.epoch_order(train, s.seed * 1000 + epoch, s.batch_size)
            torch.manual_seed(s.seed * 1000 + epoch)
            t0 = time.monotonic()
            tokens = 0
            running = 0.0
            bar = tqdm(range(0, len(order), s.batch_size), desc=f"epoch {epoch + 1}/{s.epochs}",
                       unit="batch", disable=not self.progress, file=sys.stdout)
            for i in bar:
                items = [train[j] for j in order[i:i + s.batch_size]]
                loss, _n = self.loss(model, items, pad_id)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
                optimiser.step()
                scheduler.step()
                optimiser.zero_grad(set_to_none=True)
                tokens += sum(len(ids) for ids, _ in items)
                value = float(loss.detach())
                running = 0.9 * running + 0.1 * value if i else value
                bar.set_postfix(loss=f"{running:.3f}", tok_s=f"{tokens / max(1e-6, time.monotonic() - t0):.0f}")
            bar.close()
            seconds = time.monotonic() - t0
            held = self.heldout_loss(model, heldout, pad_id)
            history.append({"epoch": epoch + 1, "seconds": round(seconds, 1), "train_loss": round(running, 4),
                            "heldout_loss": round(held, 4), "tokens_per_second": round(tokens / seconds, 1)})
            print(f"epoch {epoch + 1}: {seconds:.0f} s, {tokens / seconds:.0f} tokens/s, "
                  f"train loss {running:.3f}, held-out loss {held:.3f}")
            target = checkpoints / f"epoch-{epoch}"
            model.save_pretrained(target)
            torch.save({"optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                        "history": history, "epoch": epoch}, target / "state.pt")
        final = self.work / "adapter"
        shutil.rmtree(final, ignore_errors=True)
        model.save_pretrained(final)
        return {"base_dir": str(base_dir), "adapter_dir": str(final), "base_sha256": base_sha256, "history": history,
                "trainable_parameters": trainable, "load_seconds": round(loaded, 1),
                "train_examples": len(train), "heldout_examples": len(heldout),
                "train_tokens_per_epoch": sum(len(ids) for ids, _ in train)}


def convert(adapter_dir: Path, base_dir: Path, out: Path, cache: Path) -> None:
    """The PEFT adapter as a GGUF LoRA (f16) that llama.cpp loads over the unchanged Q4_K_M model."""
    script = converter(cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    done = subprocess.run([sys.executable, str(script), "--base", str(base_dir), "--outtype", "f16",
                           "--outfile", str(tmp), str(adapter_dir)], capture_output=True, text=True)
    if done.returncode != 0 or not tmp.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise TrainError("the LoRA converter failed: " + " | ".join(tail))
    os.replace(tmp, out)
