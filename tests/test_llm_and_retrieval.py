"""The real local model and the real literature index: both prompt paths, fairness, offline retrieval."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.engine.records import Entry
from bot.llm.fair_queue import FairQueue
from bot.llm.llama_generator import LlamaGenerator
from bot.retrieval.cards import CardError, load_card, load_cards
from bot.retrieval.literature import LiteratureIndex
from conftest import ROOT, Chat, every_file_bytes

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
VARS = {"question": "Where did power sit?", "answer": "The finance lead shaped every decision."}


@pytest.fixture(scope="module")
def instruct_model(tmp_path_factory, model_path) -> Path:
    """A copy of the small model whose GGUF carries a chat template, as an instruct model's would."""
    out = tmp_path_factory.mktemp("instruct") / "with-template.gguf"
    tool = Path(sys.executable).parent / "gguf-new-metadata"
    subprocess.run([str(tool), str(model_path), str(out), "--chat-template", GEMMA_CHAT_TEMPLATE, "--force"],
                   check=True, capture_output=True)
    return out


def _generator(path, app, **kw) -> LlamaGenerator:
    # Behaviour, not speed, is tested here: a busy host must not turn a slow answer into a timeout.
    kw.setdefault("timeout_seconds", 60)
    gen = LlamaGenerator(path, app.prompts.templates, threads=2, **kw)
    gen.start()
    gen.wait_ready(120)
    return gen


def test_base_model_uses_the_few_shot_completion_template(app, model_path):
    gen = _generator(model_path, app)
    try:
        assert gen.uses_chat_template is False
        result = asyncio.run(gen.generate("console:a", "followup", VARS))
        assert result.status == "ok" and result.text
    finally:
        gen.close()


def test_a_model_with_a_chat_template_uses_it(app, instruct_model):
    gen = _generator(instruct_model, app)
    try:
        assert gen.uses_chat_template is True
        partials = []
        result = asyncio.run(gen.generate("console:a", "followup", VARS, on_partial=partials.append))
        assert result.status == "ok"
        assert "<start_of_turn>" not in result.text
        if result.text:
            assert partials and partials[-1].strip() == result.text
    finally:
        gen.close()


def test_generation_never_blocks_the_event_loop(app, model_path):
    gen = _generator(model_path, app)

    async def scenario():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        await asyncio.gather(*(gen.generate(f"console:u{i}", "followup", VARS) for i in range(3)))
        elapsed = time.perf_counter() - started
        stop = True
        await task
        return ticks, elapsed

    try:
        ticks, elapsed = asyncio.run(scenario())
        # The loop kept ticking every ~10 ms while three generations ran in the worker.
        assert ticks >= 0.5 * elapsed / 0.01
    finally:
        gen.close()


def test_fair_queue_serves_users_round_robin_and_each_users_requests_in_order():
    q: FairQueue[str] = FairQueue()
    for i in range(3):
        q.put("busy", f"busy-{i}")
    q.put("quiet", "quiet-0")
    q.put("other", "other-0")
    order = [q.get(timeout=1)[1] for _ in range(5)]
    assert order == ["busy-0", "quiet-0", "other-0", "busy-1", "busy-2"]
    q.put("a", "a-0")
    q.put("b", "b-0")
    assert q.position("b") == 1 and q.position("a") == 0


def test_fair_queue_wakes_a_waiting_worker():
    q: FairQueue[int] = FairQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(q.get(timeout=5)))
    worker.start()
    time.sleep(0.05)
    q.put("u", 7)
    worker.join(5)
    assert got == [("u", 7)]


# ----- literature -----------------------------------------------------------------------------


def test_knowledge_has_at_least_25_well_formed_cards_with_full_citations():
    cards = load_cards(ROOT / "knowledge")
    assert len(cards) >= 25
    for card in cards:
        assert "(" in card.citation and any(ch.isdigit() for ch in card.citation), card.card_id
        assert len(card.body.split()) >= 60, card.card_id
        assert card.themes


def test_a_malformed_card_is_named(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: Only a title\n---\nSome text.\n")
    with pytest.raises(CardError, match=r"bad.md: front matter lacks citation"):
        load_card(bad)


def test_ingest_is_idempotent_and_follows_card_changes(tmp_path, app):
    knowledge = tmp_path / "knowledge"
    shutil.copytree(ROOT / "knowledge", knowledge)
    index = LiteratureIndex(tmp_path / "chroma", app.embedder)
    first = index.ingest_dir(knowledge)
    assert first.embedded_cards == first.cards >= 25
    second = index.ingest_dir(knowledge)
    assert second.embedded_cards == 0 and second.chunks_embedded == 0 and second.unchanged_cards == first.cards
    count = index.count()
    card = knowledge / "kram-mentoring.md"
    card.write_text(card.read_text().replace("Kram studied", "Kram, in a landmark study, studied"))
    (knowledge / "maslach-burnout.md").unlink()
    third = index.ingest_dir(knowledge)
    assert third.embedded_cards == 1 and third.removed_cards == 1
    assert index.count() < count
    assert not index.collection.get(where={"card_id": "maslach-burnout"})["ids"]


def test_literature_is_embedded_again_when_its_embedding_model_changes(tmp_path, app, make_config):
    """The literature uses the model's int8 form; an index built with another model is rebuilt, not mixed."""
    from bot.compose import build_embedder

    cards = load_cards(ROOT / "knowledge")[:4]
    packaged = build_embedder(make_config(**{"retrieval.literature_int8": False}))
    index = LiteratureIndex(tmp_path / "chroma", packaged)
    index.ingest(cards)
    int8 = app.literature.embedder
    assert int8.model_id != packaged.model_id == app.embedder.model_id
    index.embedder = int8
    again = index.ingest(cards)
    assert again.embedded_cards == 4 and again.unchanged_cards == 0
    assert index.ingest(cards).embedded_cards == 0


def test_the_literature_int8_model_is_derived_identically_and_stays_close_to_the_packaged_one(tmp_path, app):
    import numpy as np

    from bot.llm.model_files import default_embedding_files
    from bot.package_files import sha256_of
    from bot.retrieval.embedder import MiniLMEmbedder
    from bot.retrieval.quantized_model import quantized_model

    source, tokenizer = default_embedding_files()
    built = quantized_model(source, tmp_path / "cache")
    assert built.parent == tmp_path / "cache" and not list((tmp_path / "cache").glob(".quantize-*"))
    # Built apart from the app's own copy, byte for byte the same file.
    assert sha256_of(built)[:16] == app.literature.embedder.model_id
    texts = [c for card in load_cards(ROOT / "knowledge")[:6] for c in card.chunks() + list(card.cues)]
    near = MiniLMEmbedder(built, tokenizer).embed_array(texts)
    exact = MiniLMEmbedder(source, tokenizer).embed_array(texts)
    cosines = (near * exact).sum(axis=1)
    assert cosines.min() > 0.97 and cosines.mean() > 0.99
    # The risk screen keeps the packaged model its floors were calibrated on.
    assert app.embedder.model_id == sha256_of(source)[:16] != app.literature.embedder.model_id


def test_suggestion_names_a_real_card_and_irrelevant_text_gets_nothing(app):
    lit = app.literature
    found = lit.suggest("Formally the chair had authority, but the finance director decided what got onto the "
                        "agenda and some issues were never raised at all.")
    assert found is not None
    card = load_card(ROOT / "knowledge" / f"{found.card_id}.md")
    assert (found.title, found.citation, found.idea) == (card.title, card.citation, card.idea)
    assert "power" in found.themes
    assert lit.suggest("I went for lunch and it was raining") is None


def test_journals_never_enter_the_literature_index(app):
    c = Chat(app, "dee")
    c.say("Quick note about MARKER-QUOKKA-55 and the hospice board.")
    c.say("/search MARKER-QUOKKA-55")
    for path, content in every_file_bytes(app.config.data_dir / "chroma"):
        assert b"MARKER-QUOKKA-55" not in content, path
    assert app.literature.collection.count() == app.literature.count()
    docs = app.literature.collection.get(include=["documents"])["documents"]
    assert not any("QUOKKA" in d for d in docs)


def test_chroma_telemetry_is_off(app):
    assert app.literature.client.get_settings().anonymized_telemetry is False


def test_entries_are_embedded_for_meaning_search_without_plaintext_index(app):
    vectors = list(app.journal.search_candidates("console:nobody"))
    assert vectors == []
    app.journal.add_entry("console:z", Entry(kind="note", note="hello"), app.embedder.embed(["hello"])[0])
    (entry, vector), = app.journal.search_candidates("console:z")
    assert entry.note == "hello" and len(vector) == 384
