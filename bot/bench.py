"""`spanner bench`: prints speed and memory numbers for the default model on this host. Not a test.

Everything runs in a temporary data directory with the real parts: llama.cpp,
chroma, SQLite and the offline embedder. Targets are printed beside each
number; missing one does not fail the command.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .config import Config, load_config
from .engine.records import Event

ANSWERS = [
    "The ward wanted faster discharges; the council wanted more notice before each discharge.",
    "The GP federation wanted funding for social prescribers; commissioners wanted evidence first.",
    "Housing wanted the hospital to share discharge dates; the hospital wanted housing at ward rounds.",
    "The hospice wanted a named contact; the community team wanted fewer duplicate referrals.",
    "Public health wanted a joint plan; the acute trust wanted help with winter beds.",
]
QUERIES = [
    "Formally the chair had the say but finance shaped every decision.",
    "Staff think this is cost cutting dressed up as integration.",
    "We bargained hard over who pays for the extra nurse.",
    "If discharges speed up, reablement will be swamped.",
    "I felt more like an inspector than a friend in that room.",
]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def line(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  PASS" if ok else "  MISS")
    print(f"{name:<46} {value:<28} {target}{mark}", flush=True)


def bench_followups(config: Config, runs: int) -> None:
    """Follow-up latency through the engine: the default strategy, then the model's for comparison."""
    from .compose import build_app

    for strategy in ("curated", "model", "adapter", "pool"):
        reflection = config.reflection.model_copy(update={"followup_strategy": strategy})
        app = build_app(config.model_copy(update={"reflection": reflection}))
        if app.engine.ctx.settings.followup_strategy != strategy:  # the adapter is missing or does not match
            line(f"follow-up latency ({strategy})", "not measured", "; ".join(app.notes))
            app.close()
            continue
        if app.generator is not None:
            app.generator.wait_ready(120)
        loop = asyncio.new_event_loop()
        user = f"bench:followups-{strategy}"
        send = lambda text: loop.run_until_complete(app.engine.handle(Event(user=user, text=text)))  # noqa: E731
        send("/reflect")
        send("Discharge planning with the ward and social care.")
        send(ANSWERS[0])  # warm the embedder, the model and the prompt cache once
        send("/back")
        times, generated = [], 0
        for i in range(runs):
            started = time.perf_counter()
            replies = send(ANSWERS[i % len(ANSWERS)] + f" (meeting {i})")
            times.append(time.perf_counter() - started)
            generated += any(r.generated for r in replies)
            send("/back")
        loop.close()
        # The adapter is held to the bar for shipping it as the default (0.8 s at p95).
        target = {"curated": 0.5, "model": 1.5}.get(strategy, 0.8)
        line(f"follow-up latency p50 ({strategy})", f"{pct(times, 50) * 1000:.0f} ms")
        line(f"follow-up latency p95 ({strategy})", f"{pct(times, 95) * 1000:.0f} ms",
             f"target < {target * 1000:.0f} ms", pct(times, 95) < target)
        if strategy != "curated":
            line(f"follow-ups from the model (passed the guard, {strategy})", f"{generated}/{runs}")
        app.close()


def bench_tokens(config: Config, reps: int = 5) -> None:
    """Same prompt, same sampling, same length: through the engine's worker and bare llama-cpp-python."""
    from llama_cpp import Llama

    from .engine.prompt_data import load_prompt_data
    from .llm.llama_generator import LlamaGenerator, _silence_llama_cpp

    prompts = load_prompt_data(config.paths.prompts_dir)
    template = prompts.templates["followup"]
    # No stop strings, fixed length: both sides generate exactly n tokens.
    free = template.model_copy(update={"stop": ()})
    variables = {"question": "Where did power sit?", "answer": ANSWERS[0]}
    n = 64
    gen = LlamaGenerator(config.llm.model_path, {"followup": free}, threads=config.llm.threads,
                         max_tokens=n, temperature=0.0, timeout_seconds=120)
    gen.start()
    gen.wait_ready(120)
    _silence_llama_cpp()
    bare = Llama(model_path=str(config.llm.model_path), n_ctx=config.llm.context_tokens,
                 n_threads=config.llm.threads, n_threads_batch=config.llm.threads, n_batch=512, verbose=False)
    prompt = free.completion.format(**variables)

    async def engine_once():
        before = gen.stats.tokens
        started = time.perf_counter()
        await gen.generate("bench:tokens", "followup", variables)
        return (gen.stats.tokens - before) / (time.perf_counter() - started)

    def bare_once():
        started = time.perf_counter()
        out = bare.create_completion(prompt, max_tokens=n, temperature=0.0, stop=[])
        return out["usage"]["completion_tokens"] / (time.perf_counter() - started)

    engine_rates, bare_rates = [], []
    asyncio.run(engine_once())
    bare_once()
    for _ in range(reps):  # alternate, so drift on the host affects both alike
        engine_rates.append(asyncio.run(engine_once()))
        bare_rates.append(bare_once())
    e, b = statistics.median(engine_rates), statistics.median(bare_rates)
    line("generation tokens/s through the engine", f"{e:.1f} tok/s")
    line("generation tokens/s bare llama-cpp-python", f"{b:.1f} tok/s")
    line("engine/bare ratio", f"{e / b:.3f}", "target >= 0.95", e / b >= 0.95)
    gen.close()
    bare.close()


def bench_retrieval(config: Config, synthetic_chunks: int) -> None:
    from .compose import build_embedder
    from .retrieval.cards import load_cards
    from .retrieval.literature import LiteratureIndex

    with tempfile.TemporaryDirectory() as tmp:
        index = LiteratureIndex(Path(tmp) / "chroma", build_embedder(config, threads=1, literature=True))
        index.ingest_workers = os.cpu_count() or 1  # as `spanner ingest` does (compose.build_ingest_index)
        report = index.ingest(load_cards(config.paths.knowledge_dir))
        line("ingest", f"{report.chunks_embedded / report.seconds:.0f} chunks/s",
             f"({report.chunks_embedded} chunks, {report.seconds:.1f} s)")
        query_embedder = build_embedder(config, literature=True)
        index.embedder = query_embedder

        def timed(idx: LiteratureIndex, rounds: int = 60) -> list[float]:
            times = []
            for i in range(rounds):
                started = time.perf_counter()
                idx.suggest(QUERIES[i % len(QUERIES)] + f" {i}")
                times.append(time.perf_counter() - started)
            return times

        timed(index, 5)
        t = timed(index)
        line(f"retrieval at corpus size ({index.count()} chunks) p50/p95",
             f"{pct(t, 50) * 1000:.1f} / {pct(t, 95) * 1000:.1f} ms")
        # Synthetic chunks: real card vectors plus noise, so the index has realistic structure.
        big = LiteratureIndex(Path(tmp) / "chroma-big", query_embedder, collection="synthetic")
        real = index.collection.get(include=["embeddings", "metadatas"])
        base = np.asarray(real["embeddings"], dtype=np.float32)
        rng = np.random.default_rng(7)
        started = time.perf_counter()
        for start in range(0, synthetic_chunks, 2000):
            count = min(2000, synthetic_chunks - start)
            picks = base[rng.integers(0, len(base), count)] + rng.normal(0, 0.05, (count, base.shape[1]))
            picks /= np.linalg.norm(picks, axis=1, keepdims=True)
            metas = [dict(real["metadatas"][j % len(base)], card_id=f"synthetic-{start + j}")
                     for j in range(count)]
            big.collection.add(ids=[f"s{start + j}" for j in range(count)], embeddings=picks.astype(np.float32),
                               metadatas=metas, documents=["synthetic"] * count)
        build = time.perf_counter() - started
        timed(big, 5)
        t = timed(big)
        line(f"retrieval at {big.count():,} chunks p50/p95", f"{pct(t, 50) * 1000:.1f} / {pct(t, 95) * 1000:.1f} ms",
             "target p95 < 50 ms", pct(t, 95) < 0.05)
        line("  (synthetic index build)", f"{build:.1f} s")


def bench_startup(config: Config, config_path: Path) -> None:
    from .compose import build_app

    started = time.perf_counter()
    app = build_app(config)
    composed = time.perf_counter() - started
    if app.generator is not None:
        app.generator.wait_ready(120)
    ready = time.perf_counter() - started
    app.close()
    line("start-up: compose (db, keys, index, prompts)", f"{composed * 1000:.0f} ms")
    line("start-up: ready (model loaded only if a strategy uses it)", f"{ready * 1000:.0f} ms")
    spanner = Path(sys.executable).parent / "spanner"
    started = time.perf_counter()
    subprocess.run([str(spanner), "chat", "--config", str(config_path), "--user", "bench"],
                   input=b"/help\n", capture_output=True, check=True)
    line("start-up: `spanner chat` to /help answered", f"{(time.perf_counter() - started) * 1000:.0f} ms")
    # Peak memory of the real chat process through a reflection with model follow-ups and a summary.
    script = "\n".join(["/reflect", "Discharge planning.", *ANSWERS[:1], "They fear winter.", "Persuading",
                        "Why not.", *(["/skip"] * 12), "save"]) + "\n"
    subprocess.run([str(spanner), "chat", "--config", str(config_path), "--user", "bench-rss"],
                   input=script.encode(), capture_output=True, check=True)
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    line("peak RSS of `spanner chat` (one reflection)", f"{rss_mb:.0f} MB", "target < 1024 MB", rss_mb < 1024)


def _emulator():
    """The Bot API emulator lives with the tests; the benchmark reuses it."""
    from .config import ROOT
    sys.path.insert(0, str(ROOT / "tests"))
    from telegram_emulator import TelegramEmulator
    from tg_helpers import LiveBot
    return TelegramEmulator, LiveBot


def bench_telegram(config_path: Path, data: Path, users: int = 20, minutes: float = 10.0) -> None:
    from storage.people import People

    from .compose import build_app

    Emulator, LiveBot = _emulator()
    emu = Emulator().start()
    emu.limits = (1.0, 3, 30.0)  # answer 429 as Telegram would, to count any we cause
    config = load_config(config_path, overrides={"telegram.base_url": emu.base_url, "telegram.poll_timeout": 2})
    app = build_app(config)
    people = People(app.journal)
    ids = [9000 + i for i in range(users)]
    for uid in ids:
        people.redeem(people.create_invite("spanner"), f"telegram:{uid}", f"U{uid}")
    bot = LiveBot(app, emu).start()

    def first_visible_after(chat_id: int, since: float) -> float | None:
        stamps = [t for c, t in emu.chat_actions if c == chat_id and t >= since]
        stamps += [m.at for m in emu.chat(chat_id) if m.at >= since]
        return min(stamps) - since if stamps else None

    try:
        # Half the users are in a reflection; the others will use non-model commands.
        reflecting, browsing = ids[: users // 2], ids[users // 2:]
        for uid in reflecting:
            emu.send_text(uid, "/reflect")
            emu.send_text(uid, "Discharge planning with the ward and the council.")
        emu.wait_for(lambda: all(any("(2/9)" in t for t in emu.texts(u)) for u in reflecting), 120, "step 2")
        sent_at = {}
        for uid in reflecting:  # every reflecting user now needs the model
            sent_at[uid] = time.monotonic()
            emu.send_text(uid, ANSWERS[uid % len(ANSWERS)])
        time.sleep(0.3)
        quick = []
        for round_ in range(5):
            for uid in browsing:
                t0 = time.monotonic()
                emu.send_text(uid, "/journal" if round_ % 2 else "/help")
                quick.append((uid, t0))
            time.sleep(0.2)

        def followup_done(uid):
            msgs = [m for m in emu.chat(uid) if m.at >= sent_at[uid] and m.text.endswith("?") and
                    not m.text.endswith(" …")]
            return msgs[-1].at if msgs else None
        emu.wait_for(lambda: all(followup_done(u) for u in reflecting), 180, "every follow-up")
        firsts = [first_visible_after(uid, t0) for uid, t0 in quick]
        firsts = [f for f in firsts if f is not None]
        line(f"telegram: first visible reply p95, {users} users", f"{pct(firsts, 95) * 1000:.0f} ms",
             "target < 500 ms (model busy)", pct(firsts, 95) < 0.5)
        waits = [followup_done(u) - sent_at[u] for u in reflecting]
        line("telegram: follow-up p95 / back of the queue", f"{pct(waits, 95):.2f} / {max(waits):.2f} s",
             "target p95 < 5 s", pct(waits, 95) < 5)

        # Sustained: 10 chats stream reflections for `minutes`, each person answering when the bot
        # has answered them, after a short pause to type. Count the 429s we cause.
        chats = ids[:10]
        for uid in chats:
            emu.send_text(uid, "/reflect")
        deadline = time.monotonic() + minutes * 60
        turns = 0
        while time.monotonic() < deadline:
            for uid in chats:
                handle = f"telegram:{uid}"
                if app.journal.load_state(handle).get("reflect") is None or \
                        bot.bot.transport.pending_updates(handle):
                    if not bot.bot.transport.pending_updates(handle):
                        emu.send_text(uid, "/reflect")
                    continue
                if bot.bot.transport.pending_outbox(uid):
                    continue  # still reading the last reply
                phase = app.journal.load_state(handle)["reflect"]["phase"]
                emu.send_text(uid, "save" if phase == "review" else ANSWERS[turns % len(ANSWERS)] + f" Turn {turns}.")
                turns += 1
            time.sleep(2.0)
        emu.wait_for(lambda: not bot.bot.transport.pending_outbox(), 60, "the outbox to drain")
        sent = len(emu.method_calls("sendMessage")) + len(emu.method_calls("editMessageText"))
        line(f"telegram: 429s in {minutes:g} min of 10 chats streaming", f"{emu.too_many} ({sent} sends/edits)",
             "target 0", emu.too_many == 0)
        line("telegram: user turns in the soak", str(turns))
        pending = len(bot.bot.transport.pending_outbox())
        line("telegram: replies left unsent at the end", str(pending), "target 0", pending == 0)
    finally:
        bot.stop()
        app.close()
        emu.stop()


def _create_people(job: tuple[str, str, int]) -> list[float]:
    """One of the processes of the key-creation benchmark: create people one by one, timing each."""
    from storage.journal import SqlJournal

    data, name, count = job
    journal = SqlJournal.open(Path(data))
    times = []
    for i in range(count):
        started = time.perf_counter()
        journal.ensure_user(f"bench:{name}:{i}")  # a KEK in keys.db, then the wrapped data key
        times.append(time.perf_counter() - started)
    journal.close()
    return times


def bench_keys(data: Path, processes: int = 4, each: int = 50) -> None:
    """Creating people's keys from several processes at once, on one data directory."""
    import multiprocessing

    from storage.journal import SqlJournal

    SqlJournal.open(data).close()  # the keys folder exists before the race starts
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        started = time.perf_counter()
        results = pool.map(_create_people, [(str(data), f"p{n}", each) for n in range(processes)])
        wall = time.perf_counter() - started
    times = [t for r in results for t in r]
    journal = SqlJournal.open(data)
    kept = len(journal.keys.keystore)
    journal.close()
    line(f"create a person's keys, {processes} processes at once p50/p95",
         f"{pct(times, 50) * 1000:.1f} / {pct(times, 95) * 1000:.1f} ms",
         f"({len(times)} people in {wall:.1f} s; {kept} keys kept)", kept >= len(times))


def bench_pruning(app, updates: int = 2000) -> None:
    """What keeping only ids costs: handling an update (and pruning it), confirming a sent message."""
    from storage.transport import TransportStore

    transport = TransportStore(app.journal)
    handle = "telegram:4242"
    app.journal.ensure_user(handle)
    payload = {"message": {"text": "A note about the discharge hub and the ward rota. " * 4}}
    base = 10_000_000
    transport.store_updates([(base + i, handle, payload) for i in range(updates)])
    db = app.journal.engine
    with db.connect() as conn:
        before = conn.exec_driver_sql("select sum(length(payload_ct)) from inbox").scalar() or 0
    handled = []
    for i in range(updates):
        started = time.perf_counter()
        transport.finish_update(base + i, [(4242, {"text": "Saved as quick note #1. " * 3})])
        handled.append(time.perf_counter() - started)
    sent = []
    for row in transport.pending_outbox(4242, limit=updates):
        started = time.perf_counter()
        transport.mark_sent(row.id, None)
        sent.append(time.perf_counter() - started)
    with db.connect() as conn:
        kept = conn.exec_driver_sql("select (select coalesce(sum(length(payload_ct)), 0) from inbox) + "
                                    "(select coalesce(sum(length(payload_ct)), 0) from outbox)").scalar()
    line("handle an update (mark, prune, queue reply) p50/p95",
         f"{pct(handled, 50) * 1000:.1f} / {pct(handled, 95) * 1000:.1f} ms")
    line("confirm a sent message (mark, prune) p50/p95", f"{pct(sent, 50) * 1000:.1f} / {pct(sent, 95) * 1000:.1f} ms")
    line(f"inbox+outbox text kept for {updates:,} messages", f"{kept:,} bytes (was {before / 1e3:,.0f} KB in the inbox)",
         "target 0", kept == 0)


def bench_data(data: Path, entries: int = 1000, backup_mb: int = 100) -> None:
    """Encryption, export, erasure and backup costs, on the real storage with real keys."""
    import random

    from storage import lifecycle
    from storage.journal import SqlJournal

    from .compose import build_app
    from .engine.records import Answer, Entry

    bench_keys(data)
    config = load_config(overrides={"paths.data_dir": str(data), "llm.enabled": False, "retrieval.enabled": False})
    app = build_app(config)
    journal: SqlJournal = app.journal
    bench_pruning(app)
    rng = random.Random(3)
    words = "ward council discharge power story budget carers trust board estates rota pilot".split()

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."

    user = "console:bench-data"
    saves = []
    for _ in range(entries):
        entry = Entry(kind="reflection", protocol="after_meeting", summary=text(30), tags=["power", "trust"],
                      answers=[Answer(f"s{i}", "A question?", text(40), "A follow-up?", text(15)) for i in range(9)])
        started = time.perf_counter()
        journal.add_entry(user, entry, [rng.random() for _ in range(384)])
        saves.append(time.perf_counter() - started)
    line("save a 9-answer reflection (encrypted) p50/p95",
         f"{pct(saves, 50) * 1000:.1f} / {pct(saves, 95) * 1000:.1f} ms")
    loop = asyncio.new_event_loop()

    def timed_command(text: str, times: int) -> list[float]:
        out = []
        for _ in range(times):
            started = time.perf_counter()
            loop.run_until_complete(app.engine.handle(Event(user=user, text=text)))
            out.append(time.perf_counter() - started)
        return out
    lists = timed_command("/journal", 50)
    line(f"/journal with {entries:,} entries p50/p95", f"{pct(lists, 50) * 1000:.1f} / {pct(lists, 95) * 1000:.1f} ms")
    started = time.perf_counter()
    app.engine.sharing.export(user)
    line(f"export of {entries:,} entries", f"{(time.perf_counter() - started):.2f} s")
    deletes = []
    for number in range(1, 21):  # the last entries: /delete N, then yes (the log is emptied each time)
        timed_command(f"/delete {entries - number + 1}", 1)
        deletes.extend(timed_command("yes", 1))
    line("/delete an entry (with its WAL checkpoint) p50/p95",
         f"{pct(deletes, 50) * 1000:.1f} / {pct(deletes, 95) * 1000:.1f} ms")
    loop.close()
    # Fill the database to about backup_mb with another person's notes, then back it up.
    filler = "console:bench-filler"
    target = backup_mb * 1_000_000
    db = data / "spanner.db"
    while db.stat().st_size < target:
        ops = [("add", Entry(kind="note", note=text(900)), None) for _ in range(400)]
        journal.apply(filler, ops, {})
    started = time.perf_counter()
    out = lifecycle.backup(data, data.parent / "backups")
    line(f"backup of a {db.stat().st_size / 1e6:.0f} MB database", f"{time.perf_counter() - started:.2f} s",
         f"({out.stat().st_size / 1e6:.0f} MB written)")
    left = journal.count_entries(user)
    started = time.perf_counter()
    lifecycle.forget(journal, user)
    line(f"erase a person with {left:,} entries", f"{time.perf_counter() - started:.2f} s")
    app.close()


def bench_schedule(config_path: Path, data: Path, schedules: int = 10_000, same_minute: int = 1_000) -> None:
    """Tick cost with many schedules, and a burst of check-ins all due in one minute through Telegram."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import insert

    from storage.models import Schedule, User, UserRole
    from storage.people import People

    from .compose import build_app

    Emulator, LiveBot = _emulator()
    emu = Emulator().start()
    emu.limits = (1.0, 3, 30.0)
    config = load_config(config_path, overrides={"telegram.base_url": emu.base_url, "telegram.poll_timeout": 2,
                                                 "llm.enabled": False, "retrieval.enabled": False,
                                                 "scheduler.quiet_hours": ""})
    app = build_app(config)
    # Real time: the bot's own APScheduler job ticks too, and both must agree on what is due.
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    at, today, other_day = now.strftime("%H:%M"), str(now.weekday()), str((now.weekday() + 2) % 7)
    # Many people whose check-ins are on other days: rows the tick must not touch.
    with app.journal.sessions.begin() as s:
        ids = s.execute(insert(User).returning(User.id), [
            {"handle": f"bench:{i}", "display_name": "", "next_number": 1,
             "created_at": now} for i in range(schedules - same_minute)]).scalars().all()
        s.execute(insert(UserRole), [{"user_id": uid, "role": "mentee"} for uid in ids])
        s.execute(insert(Schedule), [{"user_id": uid, "kind": "checkin", "days": other_day, "at": at,
                                      "timezone": "Europe/London", "next_slot": now + timedelta(days=2),
                                      "paused": False, "created_at": now} for uid in ids])
    people = People(app.journal)
    started = time.perf_counter()
    handles = [f"telegram:{50_000 + i}" for i in range(same_minute)]
    for h in handles:
        people.redeem(people.create_invite("mentee"), h, "M")
    with app.journal.sessions.begin() as s:
        for uid in s.query(User.id).filter(User.handle.like("telegram:%")).all():
            s.add(Schedule(user_id=uid[0], kind="checkin", days=today, at=at, timezone="UTC",
                           next_slot=now, paused=False, created_at=now))
    line("  (set-up: people with keys)", f"{time.perf_counter() - started:.1f} s")
    quiet_ticks = []
    for minute in range(20, 0, -1):
        t0 = time.perf_counter()
        app.scheduler.tick(now - timedelta(minutes=minute))
        quiet_ticks.append(time.perf_counter() - t0)
    line(f"tick with {schedules:,} schedules, none due, p95", f"{pct(quiet_ticks, 95) * 1000:.1f} ms",
         "target < 200 ms", pct(quiet_ticks, 95) < 0.2)
    bot = LiveBot(app, emu).start()
    try:
        t0 = time.perf_counter()
        report = app.scheduler.tick(max(now, datetime.now(timezone.utc)))
        tick_time = time.perf_counter() - t0
        line(f"tick with {same_minute:,} check-ins due in the same minute", f"{tick_time * 1000:.0f} ms",
             f"({report.delivered} delivered here, {report.duplicates} already claimed by the bot's own tick)")
        again = app.scheduler.tick(datetime.now(timezone.utc))  # a second tick delivers nothing again
        line("  a second tick right after", f"{again.delivered} delivered", "target 0", again.delivered == 0)
        ids_ = [int(h.split(":")[1]) for h in handles]
        emu.wait_for(lambda: sum(1 for c in ids_ if emu.chat(c)) == same_minute, 600, "every check-in")
        sent = time.perf_counter() - t0
        per_chat = [len(emu.chat(c)) for c in ids_]
        line(f"{same_minute:,} check-ins delivered through Telegram", f"{sent:.1f} s "
             f"({same_minute / sent:.1f}/s)", "within 30/s overall", same_minute / sent <= 30.5)
        line("  lost / duplicated / 429s", f"{per_chat.count(0)} / {sum(1 for n in per_chat if n > 1)} / "
             f"{emu.too_many}", "target 0 / 0 / 0",
             per_chat.count(0) == 0 and all(n == 1 for n in per_chat) and emu.too_many == 0)
    finally:
        bot.stop()
        app.close()
        emu.stop()


SHARED_ANSWERS = [
    "Ward round on Ward 7B with Priya Shah, Dave Reilly and Mrs K from Northshire Council.",
    "Priya wanted Mr Jones (NHS number 943 476 5919, DOB 12/03/1957) home by Friday; I'd hoped for more time.",
    "I bargained: Dave offered a care package, and the ward manager agreed to a joint huddle.",
    "Mostly tactical, then strategic once Mrs K asked \"who pays?\"",
    "Power sat with the bed manager at Westfield Medical Centre, whatever the chair said.",
    "The local story is that Northshire ICB pushes problems onto community teams; carers are not heard.",
    "If discharges speed up, bed 14 and the reablement team at LS1 4AP will be swamped.",
    "Priya saw me as a critical friend; Dave, I think, as a regulator. Email dave@example.org to check.",
    "Call Priya on 07911 123456 tomorrow about a joint huddle with the matron.",
]


def bench_sharing(config: Config, runs: int = 40, portfolio_entries: int = 50) -> None:
    """De-identification of a 9-answer entry (p95 target 150 ms), spaCy's memory, a 50-entry portfolio PDF."""
    import psutil

    from .compose import build_app
    from .engine.records import Answer, Entry

    app = build_app(config, start_model=False)
    try:
        entry = Entry(kind="reflection", protocol="after_meeting", title="Ward round", note="", summary="",
                      answers=[Answer(step_id=s.id, question=s.question, answer=a) for s, a in
                               zip(app.prompts.protocols["after_meeting"].steps, SHARED_ANSWERS)])
        check = app.engine.sharing.check
        before = psutil.Process().memory_info().rss
        started = time.perf_counter()
        app.engine.ctx.deidentifier.load()
        loaded = time.perf_counter() - started
        extra = (psutil.Process().memory_info().rss - before) / 2**20
        line("spaCy + Presidio first load", f"{loaded:.2f} s")
        line("extra resident memory with spaCy loaded", f"{extra:.0f} MB", "<= 150 MB", extra <= 150)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            checked, sizes = check.entry_plan([entry], "bench")
            check.apply([entry], checked, sizes, [])
            times.append((time.perf_counter() - started) * 1000)
        line("anonymise a 9-answer entry p50", f"{pct(times, 50):.0f} ms")
        line("anonymise a 9-answer entry p95", f"{pct(times, 95):.0f} ms", "<= 150 ms", pct(times, 95) <= 150)
        user = "bench:portfolio"
        app.journal.ensure_user(user)
        for _ in range(portfolio_entries):
            app.journal.add_entry(user, Entry(kind=entry.kind, protocol=entry.protocol, title=entry.title,
                                              answers=list(entry.answers)), None)
        portfolio = app.engine.sharing.portfolio
        for name in ("nmc", "hcpc"):
            started = time.perf_counter()
            made = portfolio.files(portfolio.entries(user, None, None), name, (None, None), [], {}, True)
            took = time.perf_counter() - started
            line(f"{portfolio_entries}-entry {name} portfolio (check, MD, PDF)", f"{took:.2f} s",
                 f"PDF {len(made[-1].data) / 1024:.0f} KB")
    finally:
        app.close()


def run_bench(base: Config, runs: int = 20, synthetic_chunks: int = 10_000,
              telegram_minutes: float | None = None, data_only: bool = False, schedule_only: bool = False,
              sharing_only: bool = False) -> int:
    from .compose import model_path_for

    model = model_path_for(base)
    if not model.is_file():
        print(f"spanner bench: no model at {model}; run `spanner setup` first", file=sys.stderr)
        return 2
    print(f"Spanner benchmark: {model.name}, {base.llm.threads} threads, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cfg_path = Path(tmp) / "bench.toml"
        cfg_path.write_text(f'[paths]\ndata_dir = "{data}"\n\n[llm]\nmodel_path = "{model}"\n'
                            f"threads = {base.llm.threads}\n")
        config = load_config(cfg_path)
        from .compose import build_ingest_index
        build_ingest_index(config).ingest_dir(config.paths.knowledge_dir)
        if telegram_minutes is not None:
            bench_telegram(cfg_path, data, minutes=telegram_minutes)
            return 0
        if data_only:
            bench_data(data)
            from .bench_journal import bench_journal_over_time  # /search, /insights, ingest
            bench_journal_over_time(data)
            return 0
        if schedule_only:
            bench_schedule(cfg_path, data)
            return 0
        if sharing_only:
            bench_sharing(config)
            return 0
        bench_startup(config, cfg_path)
        bench_followups(config, runs)
        bench_tokens(config)
        bench_retrieval(config, synthetic_chunks)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line("peak RSS of the benchmark itself (2 models)", f"{rss_mb:.0f} MB")
    return 0
