"""The shape the code must keep: a pure engine, storage at the bottom, one place per command.

As docs/architecture.md describes it and the "declare once" and "one door per
resource" rules ask: the engine imports no transport, database or model
library; storage imports nothing from bot.*, its modules form no cycle and they
reach a person only through the shared base; every command, button family and
pending action is declared once in the registry, and every sentence a person
reads is in prompts/.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from conftest import ROOT

FORBIDDEN = ("telegram", "sqlalchemy", "chromadb", "llama_cpp", "alembic", "onnxruntime", "tokenizers",
             "faster_whisper", "ctranslate2", "av",
             "storage", "bot.llm", "bot.retrieval", "bot.adapters", "bot.compose", "bot.voice",
             "presidio_analyzer", "presidio_anonymizer", "spacy", "reportlab", "bot.deidentify", "bot.documents")
# The journal's records are plain dataclasses at the bottom layer (standard library only): the one
# module of storage the engine may import, so that storage itself depends on nothing above it.
ENGINE_MAY_IMPORT = {"storage.records"}


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
            if name in ENGINE_MAY_IMPORT:
                continue
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_the_records_the_engine_shares_with_storage_are_plain_data():
    for name in ENGINE_MAY_IMPORT:
        path = ROOT / (name.replace(".", "/") + ".py")
        assert {i.split(".")[0] for i in _imports(path)} <= {"__future__", "dataclasses", "datetime"}


def test_importing_the_engine_loads_none_of_them():
    code = ("import sys; import bot.engine.engine, bot.engine.context; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in {[f.split('.')[0] for f in FORBIDDEN[:10]]!r}]; "
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


# ----- storage: one door per resource, no cycles, nothing from above -------------------------------

def _storage_modules():
    return {p.stem: p for p in sorted((ROOT / "storage").glob("*.py")) if p.stem != "__init__"}


def _storage_edges(path) -> set[str]:
    """The storage modules this one imports (relative or absolute)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                out.add(node.module.split(".")[0])
            elif node.level == 1:
                out.update(a.name for a in node.names)
            elif node.module and node.module.startswith("storage."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("storage."))
    return out


def test_storage_imports_nothing_from_bot():
    offenders = [f"{path.name}: {name}" for path in (ROOT / "storage").rglob("*.py")
                 for name in _imports(path) if name == "bot" or name.startswith("bot.")]
    assert offenders == []


def test_storage_modules_import_each_other_without_cycles():
    modules = _storage_modules()
    graph = {name: _storage_edges(path) & set(modules) for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import cycle: {' -> '.join(trail + [name])}"
        state[name] = "open"
        for nxt in sorted(graph[name]):
            visit(nxt, trail + [name])
        state[name] = "done"
    for name in graph:
        visit(name, [])


def test_no_storage_module_calls_another_ones_private_helpers():
    offenders = []
    for path in _storage_modules().values():
        tree = ast.parse(path.read_text())
        own_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        # A private name this module defines itself is its own business; another module's is not.
        own_names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                offenders += [f"{path.name}: imports {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if node.attr not in own_names and not (
                        isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or owner.id in own_classes)):
                    offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_every_store_reaches_people_through_the_one_base():
    from storage.base import Store
    from storage.journal import SqlJournal
    from storage.mentoring import MentoringStore
    from storage.notices import NoticeStore
    from storage.people import People
    from storage.sharing import SharingStore
    from storage.transport import TransportStore
    for store in (SqlJournal, SharingStore, MentoringStore, TransportStore, People, NoticeStore):
        assert issubclass(store, Store), store.__name__
        assert "person" not in vars(store) and "cipher" not in vars(store), store.__name__


# ----- every sentence a person reads lives in prompts/ -------------------------------------------

SENTENCE = re.compile(r"[A-Za-z]{2,}[ ,;:'’-]+[A-Za-z]{2,}")


def _exempt(tree) -> set[int]:
    """Nodes inside docstrings, log calls, raised exceptions and patterns: not text for people."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            ids.add(id(node.body[0].value))
        if isinstance(node, ast.Raise) and node.exc is not None:
            ids.update(id(sub) for sub in ast.walk(node.exc))
        if isinstance(node, ast.Call):
            func = node.func
            base = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if base in ("log", "re") or name in ("Button", "Field", "compile"):
                ids.update(id(sub) for sub in ast.walk(node))
    return ids


def test_no_user_visible_string_remains_in_the_engine():
    offenders = []
    for path in sorted((ROOT / "bot" / "engine").glob("*.py")):
        tree = ast.parse(path.read_text())
        exempt = _exempt(tree)
        for node in ast.walk(tree):
            # What Reply, Choice and Attachment carry to people comes from prompts, never a literal.
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Reply", "Choice"):
                for arg in list(node.args[:2]) + [k.value for k in node.keywords if k.arg in ("text", "label")]:
                    if isinstance(arg, ast.JoinedStr) or (isinstance(arg, ast.Constant) and arg.value):
                        offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(arg)[:60]}")
            if id(node) in exempt:
                continue
            # No sentence assembled in code: an f-string may join values, not words.
            if isinstance(node, ast.JoinedStr):
                literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if SENTENCE.search(literal):
                    offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:60]}")
            # And no sentence as a plain string either.
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SENTENCE.search(node.value) \
                    and node.value.rstrip()[-1:] in ".?!)":
                offenders.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert offenders == []
