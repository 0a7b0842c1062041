"""Spanner's follow-up adapter on disk: the GGUF LoRA, its manifest, and the checks that they belong.

The manifest (models/followup-lora.json, written by `spanner train`) records the hashes of the adapter
file, of the base model it was trained over, and of the prompt template it learnt. An adapter is used
only when all three match what is here now: a LoRA applied to another base, or prompted in another
layout, writes nonsense, so a mismatch is named in one line and curated questions are used instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bot.package_files import sha256_of


def manifest_path(adapter: Path) -> Path:
    return Path(adapter).with_suffix(".json")


@dataclass(frozen=True)
class AdapterCheck:
    ok: bool
    line: str  # one line for the operator: what was found, or what is wrong and the fix


def check_adapter(adapter: Path, base_model: Path, template: Path) -> AdapterCheck:
    """Whether the adapter may be used over `base_model` with `template`; never raises."""
    adapter = Path(adapter)
    manifest = manifest_path(adapter)
    if not adapter.is_file():
        return AdapterCheck(False, f"No follow-up adapter at {adapter}: using curated questions "
                                   "(fix: `spanner train`, or followup_strategy = \"curated\").")
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        expected = {"adapter": meta["adapter_sha256"], "base model": meta["base_model_sha256"],
                    "prompt template": meta["template_sha256"]}
    except (OSError, ValueError, KeyError, TypeError):
        return AdapterCheck(False, f"The follow-up adapter's manifest {manifest} is missing or unreadable: "
                                   "using curated questions (fix: `spanner train` writes both).")
    actual = {"adapter": adapter, "base model": Path(base_model), "prompt template": Path(template)}
    for what, path in actual.items():
        try:
            digest = sha256_of(path)
        except OSError:
            return AdapterCheck(False, f"The follow-up adapter's {what} ({path}) cannot be read: "
                                       "using curated questions.")
        if digest != expected[what]:
            said = (f"The follow-up adapter {path} is not the file its manifest describes" if what == "adapter"
                    else f"The follow-up adapter was trained for another {what} than {path}")
            return AdapterCheck(False, f"{said} (hash {digest[:12]}, manifest {expected[what][:12]}): using "
                                       "curated questions (fix: `spanner train` again, or restore the file).")
    return AdapterCheck(True, f"follow-up adapter ready (hashes checked): {adapter}")
