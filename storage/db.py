"""Opening the database: engine, SQLite pragmas, the transaction recipe, migrations to head.

Python's sqlite3 module (3.11) starts transactions lazily and not before DDL or
SELECTs, which breaks SQLAlchemy's transaction model. We use SQLAlchemy's
documented recipe: turn the driver's handling off and emit BEGIN ourselves
(IMMEDIATE, so two writers never deadlock on a lock upgrade).

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
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StorageFull(OSError):
    """The disk holding the data directory is full: nothing from the failed write was kept."""

    def __init__(self) -> None:
        super().__init__(errno.ENOSPC, "the disk holding the data directory is full")


def is_disk_full(exc: BaseException) -> bool:
    """A driver or OS error that means "no space left" (SQLITE_FULL, or ENOSPC anywhere in the chain)."""
    while exc is not None:
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def checkpoint(engine: Engine) -> None:
    """Copy the write-ahead log into the database and empty it, so deleted text leaves no copy there."""
    with engine.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'spanner.db'}"


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
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

    @event.listens_for(engine, "handle_error")
    def _on_error(context):
        if is_disk_full(context.original_exception):
            raise StorageFull() from None

    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (head by default). Safe to run at every start."""
    command.upgrade(alembic_config(engine), revision)
