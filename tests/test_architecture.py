"""The engine is pure: it imports no transport, database or model library (DESIGN.md section 3)."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

FORBIDDEN = ("telegram", "sqlalchemy", "chromadb", "llama_cpp", "alembic", "onnxruntime", "tokenizers",
             "storage", "bot.llm", "bot.retrieval", "bot.adapters", "bot.compose")


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_engine_source_imports_no_transport_database_or_model_library():
    offenders = []
    for path in sorted((ROOT / "bot" / "engine").glob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_importing_the_engine_loads_none_of_them():
    code = ("import sys; import bot.engine.engine, bot.engine.context; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in {[f.split('.')[0] for f in FORBIDDEN[:7]]!r}]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_module_says_what_it_is_for():
    missing = []
    for folder in ("bot", "storage"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "versions" in path.parts:
                continue
            if not ast.get_docstring(ast.parse(path.read_text())):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == []
