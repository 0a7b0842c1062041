"""Spanner's own follow-up adapter: its training set keeps the product's rules, it loads over the
packaged model and changes what the model writes, and a missing or mismatched adapter is named in
one line while curated questions carry on. The risk screen still runs before any model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from bot.config import ROOT
from bot.engine.followups import adapter_variables
from bot.engine.prompt_data import load_prompt_data
from bot.llm.adapter_files import check_adapter
from bot.retrieval.cards import load_cards
from bot.training.dataset import (FAULTS, KINDS, Checker, check_set, coverage, eval_texts, load_examples,
                                  load_negatives, near_duplicates)
from conftest import Chat, FixedClock, run_cli, write_config
from test_guard_and_model_failures import ScriptedModel, is_curated_pick

ADAPTER = ROOT / "models" / "followup-lora.gguf"
TEMPLATE = ROOT / "prompts" / "templates" / "followup_adapter.toml"
PROMPTS = load_prompt_data(ROOT / "prompts")
CHECKER = Checker(PROMPTS)
EXAMPLES = load_examples(ROOT / "training" / "followups")
HELD_OUT = eval_texts(ROOT / "eval", set(CHECKER.steps), {c.card_id for c in load_cards(ROOT / "knowledge")})


@pytest.fixture(scope="module")
def embedder():
    """MiniLM, as the product embeds (two threads: the near-duplicate check reads every example)."""
    from bot.compose import build_embedder
    from bot.config import load_config
    return build_embedder(load_config(), threads=2)


def test_every_training_example_keeps_the_products_rules_and_every_step_and_button_is_taught():
    assert check_set(EXAMPLES, CHECKER) == []
    assert len(EXAMPLES) >= 1500
    counts = coverage(EXAMPLES)
    steps = {s.id: s for s in CHECKER.protocol.steps}
    typed = {sid for sid, s in steps.items() if s.followup}
    assert typed <= set(counts["step"])
    buttons = {f"{sid}:{label}" for sid, s in steps.items() for label in s.choices}
    assert buttons <= set(counts["choice"]), buttons - set(counts["choice"])
    assert set(KINDS) <= set(counts["kind"])
    assert len(counts["setting"]) >= 20  # the whole range of health and social care, not one ward


def test_the_training_set_checker_refuses_reasks_yes_no_questions_judging_and_unknown_names():
    negatives = load_negatives(ROOT / "training" / "negatives.jsonl")
    assert {ex.fault for ex in negatives} == set(FAULTS)
    wrong = [(ex.id, ex.fault, CHECKER.fault_of(ex)) for ex in negatives if CHECKER.fault_of(ex) != ex.fault]
    assert wrong == []
    assert all(CHECKER.problems(ex) for ex in negatives)  # none of them could be trained on


@pytest.mark.parametrize("content, said", [
    (b'{"id": "x", "step": "power"\n', "a.jsonl:1: not a training example"),
    (b'{"id": "x", "step": "power", "answer": "The chair."}\n', "a.jsonl:1: not a training example"),
    (b"\x00\xff\xfe binary\n", "a.jsonl: not UTF-8 text"),
])
def test_a_malformed_or_binary_training_file_is_named_in_one_line_with_its_fix(tmp_path, content, said):
    (tmp_path / "a.jsonl").write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "bot.training", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_no_training_answer_is_a_near_duplicate_of_a_held_out_eval_case(embedder):
    assert len(HELD_OUT) > 500  # every eval set is read: cases, holdout and final
    assert near_duplicates(EXAMPLES, HELD_OUT, embedder.embed_array, 0.9) == []


def test_the_near_duplicate_check_catches_an_eval_answer_copied_into_training(embedder):
    copied = EXAMPLES[0].__class__(id="copied", step="wants", answer=HELD_OUT[3][1] + " ", followup="x")
    hits = near_duplicates([copied], HELD_OUT, embedder.embed_array, 0.9)
    assert hits and hits[0][0] == "copied" and hits[0][1] == HELD_OUT[3][0]


def test_the_adapter_loads_over_the_packaged_model_and_changes_what_it_writes(model_path):
    from llama_cpp import Llama

    step = CHECKER.steps["power"]
    prompt = PROMPTS.templates["followup_adapter"].completion.format(**adapter_variables(
        step.question, "Formally the chair, but really the finance lead, because every idea went past her first.",
        {"meeting": "Locality board on the new frailty hub, with the chair and the finance lead."}))
    written = {}
    for name, lora in (("base", None), ("adapter", str(ADAPTER))):
        llm = Llama(model_path=str(model_path), lora_path=lora, n_ctx=512, n_threads=2, verbose=False, seed=1)
        written[name] = llm.create_completion(prompt, max_tokens=40, temperature=0.0, stop=["\n"])["choices"][0]["text"]
        llm.close()
    assert written["adapter"] != written["base"]
    source = "Locality board on the new frailty hub, with the chair and the finance lead. " \
             "Formally the chair, but really the finance lead, because every idea went past her first."
    assert CHECKER.guard.check_followup(written["adapter"].strip(), source, step.question).ok, written


def test_setup_checks_the_adapters_hashes_against_its_manifest(model_path):
    assert check_adapter(ADAPTER, model_path, TEMPLATE).ok


def _adapter_copy(tmp_path, change=None):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(ADAPTER, folder / ADAPTER.name)
    manifest = json.loads(ADAPTER.with_suffix(".json").read_text())
    if change:
        change(folder / ADAPTER.name, manifest)
    (folder / ADAPTER.with_suffix(".json").name).write_text(json.dumps(manifest))
    return folder / ADAPTER.name


def _flip_a_byte(path, _manifest):
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def _other_base(_path, manifest):
    manifest["base_model_sha256"] = "0" * 64


@pytest.mark.parametrize("change, said", [
    (None, "No follow-up adapter at"),
    (_flip_a_byte, "is not the file its manifest describes"),
    (_other_base, "trained for another base model"),
])
def test_a_missing_or_mismatched_adapter_is_named_in_one_line_and_curated_questions_are_used(
        tmp_path, make_app, make_config, change, said):
    adapter = tmp_path / "absent.gguf" if change is None else _adapter_copy(tmp_path, change)
    config = make_config(**{"reflection.followup_strategy": "adapter", "llm.adapter_path": str(adapter)})
    app = make_app(config, clock=FixedClock())
    lines = [n for n in app.notes if said in n]
    assert len(lines) == 1 and "\n" not in lines[0] and "using curated questions" in lines[0]
    assert app.engine.ctx.settings.followup_strategy == "curated"
    assert app.generator is None  # the model is not even loaded for a strategy that fell back
    c = Chat(app)
    c.say("/reflect")
    c.say("Discharge meeting with the ward manager.")
    question = c.say("The ward wanted speed; social care wanted notice before anyone went home.")[-1]
    assert is_curated_pick(question, CHECKER.steps["wants"])
    c.close()


def test_the_adapter_is_asked_in_its_own_layout_with_the_earlier_answers_and_after_buttons(make_app, make_config):
    fake = ScriptedModel(outputs=["What made the notice period matter so much to social care this week?",
                                  "What did you lean on when persuading them about the notice period?"])
    app = make_app(make_config(**{"reflection.followup_strategy": "adapter"}), clock=FixedClock(), generator=fake)
    c = Chat(app)
    c.say("/reflect")
    c.say("Discharge meeting with the ward manager and social care.")
    asked = c.say("The ward wanted speed; social care wanted notice before anyone went home.")[-1]
    assert asked == "What made the notice period matter so much to social care this week?"
    c.say("/skip")  # past the follow-up, to the engagement buttons
    after_button = c.say("Persuading")[-1]
    assert after_button == "What did you lean on when persuading them about the notice period?"
    tasks = [task for task, _ in fake.prompts]
    assert tasks == ["followup_adapter", "followup_adapter"]
    first, second = (v for _, v in fake.prompts)
    assert first["earlier"].startswith("meeting: Discharge meeting with the ward manager")
    assert second["answer"] == "Persuading" and "wants: The ward wanted speed" in second["earlier"]
    c.close()


def test_the_risk_screen_answers_before_the_adapter_is_ever_asked(make_app, make_config):
    fake = ScriptedModel(outputs=["What would help most right now?"] * 3)
    app = make_app(make_config(**{"reflection.followup_strategy": "adapter"}), clock=FixedClock(), generator=fake)
    c = Chat(app)
    c.say("/reflect")
    c.say("Team meeting about the rota.")
    replies = " ".join(c.say("Honestly I don't want to be alive any more and I have been thinking about how."))
    assert "116 123" in replies  # Samaritans, from the care reply
    assert fake.prompts == []
    c.close()


@pytest.mark.slow
def test_spanner_train_dry_run_builds_a_loadable_adapter_end_to_end(tmp_path, model_path):
    """Needs the optional extra (pip install -e '.[train]'); a few minutes on 2 cores, so kept out of the default run."""
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.toml", data, model_path, "")
    done = run_cli(["train", "--config", str(cfg), "--dry-run", "--out", str(out)], timeout=900)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    manifest = json.loads((out / "followup-lora.json").read_text())
    assert manifest["settings"]["limit"] == 20 and manifest["settings"]["epochs"] == 1
    assert check_adapter(out / "followup-lora.gguf", model_path, TEMPLATE).ok
    assert "the adapter over the packaged model wrote:" in done.stdout.decode()
