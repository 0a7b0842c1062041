"""Opening the database: engine, per-dialect set-up, the transaction recipe, migrations to head.

Two databases are supported. The default is SQLite in the data directory (one
host); `storage.url` may name a PostgreSQL server instead (psycopg 3), for
several processes on several hosts. What differs between them lives here, so
the stores above write one kind of SQL.

SQLite: Python's sqlite3 module (3.11) starts transactions lazily and not before
DDL or SELECTs, which breaks SQLAlchemy's transaction model. We use SQLAlchemy's
documented recipe: turn the driver's handling off and emit BEGIN ourselves
(IMMEDIATE, so two writers never deadlock on a lock upgrade, and every write
transaction runs alone).

PostgreSQL: transactions run side by side (READ COMMITTED), so the few places
that read a row and then decide (a slot, an update, a person's next entry
number) lock that row (`claim`, SELECT ... FOR UPDATE [SKIP LOCKED]); on SQLite
the same query needs no lock and SQLAlchemy leaves the clause out.

A full disk is raised as StorageFull (an OSError with errno ENOSPC) instead of
the driver's generic OperationalError, so every front end can say so in one
line and log a type that names the cause.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, Insert, Select, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The key of the PostgreSQL advisory lock held while migrating (any fixed number; "spanner" in ASCII).
MIGRATION_LOCK = 0x7370616E6E6572
#: PostgreSQL's SQLSTATE for "disk full".
PG_DISK_FULL = "53100"


class StorageFull(OSError):
    """The disk holding the database is full: nothing from the failed write was kept."""

    def __init__(self) -> None:
        super().__init__(errno.ENOSPC, "the disk holding the data directory is full")


def is_disk_full(exc: BaseException) -> bool:
    """A driver or OS error that means "no space left" (SQLITE_FULL, PostgreSQL's disk_full, or ENOSPC)."""
    while exc is not None:
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if getattr(exc, "sqlstate", None) == PG_DISK_FULL:  # psycopg's DiskFull
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def checkpoint(engine: Engine) -> None:
    """SQLite: copy the write-ahead log into the database and empty it, so deleted text leaves no copy there.

    PostgreSQL has nothing like it: a deleted row stays in the table's pages until VACUUM and in the
    server's WAL and backups, so erasure there rests on destroying the person's key (README, threat model).
    """
    if not is_sqlite(engine):
        return
    with engine.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def insert_new(s: Session, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING in the session's own dialect (both have it; add .returning(...) to
    learn whether the row went in). A duplicate is skipped without an error, which on PostgreSQL would
    otherwise abort the whole transaction."""
    module = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite_dialect
    return module.insert(table).on_conflict_do_nothing()


def claim(query: Select, of=None) -> Select:
    """The rows of `query` that no other transaction is working on, locked for this one until it commits.

    PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so two processes claiming at once never get the same
    row and neither waits. SQLite: the clause is left out (SQLAlchemy's SQLite dialect renders none):
    BEGIN IMMEDIATE already made this transaction the only writer, so no other can hold the row.
    `of` names the table whose rows are locked when the query joins others (FOR UPDATE OF).
    """
    return query.with_for_update(skip_locked=True, of=of)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'spanner.db'}"


def describe(url: str) -> str:
    """The database as a person would name it in a message: a file, or a server and database (no password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return parsed.render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True)
    else:
        engine = _sqlite_engine(url)

    @event.listens_for(engine, "handle_error")
    def _on_error(context):
        if is_disk_full(context.original_exception):
            raise StorageFull() from None

    return engine


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we tell the user "saved" (promise 1).
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten with zeros, not left readable in free pages.
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (head by default). Safe to run at every start, from many processes."""
    command.upgrade(alembic_config(engine), revision)
