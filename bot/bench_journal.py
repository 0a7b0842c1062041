"""`spanner bench --data`, the journal over time: /search at 1,000 and 10,000 entries, /insights, ingest.

One person's journal of synthetic reflections, written with the real storage
(encrypted, with entry and passage vectors), then searched through the engine
as a person would: the query is embedded, the in-memory index answers, the
event is committed. The sentences are our own, embedded once with the real
model; an entry's vector is the normalised mean of its sentences' and each
passage keeps its sentence's vector, so the index holds realistic vectors
without embedding 10,000 entries (that would take minutes and measure the
embedder, not search). Not a test: it prints numbers beside their targets.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .bench import line, pct
from .config import Config, load_config
from .engine.records import Answer, Entry, Event
from .engine.search_index import passages

PLACES = ["the ward", "the council", "the hospice", "the GP federation", "housing", "the acute trust",
          "public health", "the carers' forum", "the voluntary sector", "the frailty unit"]
WANTS = ["earlier discharge dates", "a named contact", "funding for the extra nurse", "evidence before any money",
         "a joint plan", "fewer duplicate referrals", "more notice of packages of care", "help with winter beds",
         "a shared referral form", "data on waiting lists"]
FRAMES = ["{p} wanted {w}.", "We argued with {p} about {w}.", "I persuaded {p} to look again at {w}.",
          "Nobody at {p} owned {w}.", "{p} offered {w} if we shared the risk.", "The story at {p} is about {w}.",
          "Next time I will ask {p} for {w}."]
QUERIES = ["discharge dates", "named contact hospice", "who pays for the extra nurse", "winter beds",
           "people left waiting without help", "money and evidence", "carers feel passed around",
           "referral form", "I felt like an inspector", "holiday in Cornwall", "power behind the scenes",
           "shared risk with housing"]
OPTIONS = {"engagement": ["Bargaining", "Persuading", "Confronting", "A mix"],
           "level": ["Strategic", "Tactical", "Moved between both"],
           "stance": ["Critical friend", "Regulator", "Somewhere between", "Not sure"]}


def _sentences() -> list[str]:
    out = []
    for frame in FRAMES:
        for p in PLACES:
            for w in WANTS:
                s = frame.format(p=p, w=w)
                out.append(s[0].upper() + s[1:])
    return out


def build_journal(journal, embedder, user: str, count: int, seed: int = 11) -> float:
    """Write `count` reflections for `user` over three years; returns the seconds it took."""
    rng = random.Random(seed)
    bank = _sentences()
    bank_vectors = dict(zip(bank, embedder.embed_batches(bank, workers=os.cpu_count() or 1)))
    extra: dict[str, np.ndarray] = {}

    def vector_of(text: str) -> np.ndarray:
        if text not in bank_vectors and text not in extra:
            extra[text] = np.asarray(embedder.embed_array([text]), dtype=np.float32)[0]
        return bank_vectors.get(text, extra.get(text))

    started = time.perf_counter()
    ops = []
    for _ in range(count):
        picked = rng.sample(bank, 4)
        answers = [Answer("meeting", "What was the meeting?", picked[0]),
                   Answer("wants", "What did each party want?", picked[1]),
                   Answer("power", "Where did power sit?", picked[2]),
                   Answer("next_step", "One next step?", picked[3])]
        answers += [Answer(step, "?", rng.choice(options)) for step, options in OPTIONS.items()]
        entry = Entry(kind="reflection", protocol="after_meeting", summary=picked[0], answers=answers,
                      tags=[a.answer.lower() for a in answers[4:6]] + rng.sample(["housing", "power", "risk",
                                                                                  "funding", "story"], 2))
        rows = [vector_of(p) for p in passages(entry)]
        mean = np.mean(rows, axis=0)
        ops.append(("add", entry, [(mean / np.linalg.norm(mean)).tolist()] + [r.tolist() for r in rows]))
        if len(ops) == 500:
            journal.apply(user, ops, {})
            ops = []
    if ops:
        journal.apply(user, ops, {})
    # Spread the entries over three years, oldest first, as a person's would be.
    now = datetime.now(timezone.utc)
    with journal.engine.begin() as conn:
        uid = conn.exec_driver_sql("select id from users where handle = ?", (user,)).scalar()
        rows = conn.exec_driver_sql("select id from entries where user_id = ? order by number", (uid,)).fetchall()
        step = timedelta(days=3 * 365) / max(len(rows), 1)
        conn.exec_driver_sql("update entries set created_at = ? where id = ?", [
            ((now - step * (len(rows) - i)).strftime("%Y-%m-%d %H:%M:%S.%f"), r[0]) for i, r in enumerate(rows)])
    return time.perf_counter() - started


def bench_search(config: Config, sizes: tuple[int, ...] = (1_000, 10_000), rounds: int = 120) -> None:
    from .compose import build_app

    app = build_app(config)
    loop = asyncio.new_event_loop()
    index = app.engine.ctx.search_index
    try:
        for size in sizes:
            user = f"console:bench-search-{size}"
            made = build_journal(app.journal, app.embedder, user, size)
            line(f"  (set-up: {size:,} reflections written, encrypted)", f"{made:.1f} s")

            def search(text: str) -> float:
                started = time.perf_counter()
                loop.run_until_complete(app.engine.handle(Event(user=user, text=f"/search {text}")))
                return time.perf_counter() - started

            app.embedder.embed(["warm the embedder"])
            started = time.perf_counter()
            index.person(user)
            build = time.perf_counter() - started
            index.drop(user)
            first = search(QUERIES[0])
            line(f"/search first query at {size:,} entries (index build)", f"{first * 1000:.0f} ms",
                 f"(of which decrypting and indexing {build * 1000:.0f} ms)")
            times = [search(QUERIES[i % len(QUERIES)]) for i in range(rounds)]
            ok = size < 10_000 or pct(times, 95) <= 0.05
            line(f"/search at {size:,} entries p50/p95", f"{pct(times, 50) * 1000:.1f} / {pct(times, 95) * 1000:.1f} ms",
                 "target p95 <= 50 ms" if size >= 10_000 else "", ok if size >= 10_000 else None)
            if size == sizes[0]:
                insights = []
                for _ in range(10):
                    started = time.perf_counter()
                    loop.run_until_complete(app.engine.handle(Event(user=user, text="/insights")))
                    insights.append(time.perf_counter() - started)
                line(f"/insights at {size:,} entries (text and 2 charts) p50/p95",
                     f"{pct(insights, 50) * 1000:.0f} / {pct(insights, 95) * 1000:.0f} ms")
            index.drop(user)
    finally:
        loop.close()
        app.close()


def bench_ingest(config: Config) -> None:
    """Literature ingest into a fresh index, as `spanner ingest` does it: chunks embedded per second."""
    from .compose import build_ingest_index
    from .retrieval.cards import load_cards

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.model_copy(update={"paths": config.paths.model_copy(update={"data_dir": Path(tmp)})})
        index = build_ingest_index(cfg)
        report = index.ingest(load_cards(config.paths.knowledge_dir))
        rate = report.chunks_embedded / report.seconds
        line("ingest (batched, all cores)", f"{rate:.0f} chunks/s", f"target >= 200 ({report.chunks_embedded} chunks, "
             f"{report.seconds:.1f} s)", rate >= 200)


def bench_search_floor(config: Config) -> None:
    """The meaning floor the calibration set picks, beside the configured one."""
    from .compose import build_embedder
    from .config import ROOT
    from .evaluation import search_floor

    entries, queries = search_floor.load(ROOT / "tests" / "fixtures" / "search_calibration.toml")
    sims = search_floor.similarities(build_embedder(config), entries, queries)
    chosen = search_floor.choose(sims, queries)
    line("search meaning floor / margin (calibrated)", f"{chosen.floor:.2f} / {chosen.margin:.2f}",
         f"configured {config.search.min_similarity:.2f} / {config.search.margin:.2f}; precision "
         f"{chosen.precision:.2f}, recall {chosen.recall:.2f}, {chosen.shown_for_no_answer} shown for no answer")


def bench_journal_over_time(data: Path) -> None:
    config = load_config(overrides={"paths.data_dir": str(data), "llm.enabled": False})
    bench_ingest(config)
    bench_search_floor(config)
    bench_search(config)
