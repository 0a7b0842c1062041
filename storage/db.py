"""Opening the database: engine, SQLite pragmas, the transaction recipe, migrations to head.

Python's sqlite3 module (3.11) starts transactions lazily and not before DDL or
SELECTs, which breaks SQLAlchemy's transaction model. We use SQLAlchemy's
documented recipe: turn the driver's handling off and emit BEGIN ourselves
(IMMEDIATE, so two writers never deadlock on a lock upgrade).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


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

    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (head by default). Safe to run at every start."""
    command.upgrade(alembic_config(engine), revision)
