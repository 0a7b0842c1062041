"""Alembic environment: runs Spanner's migrations on the engine the application hands over.

The same migrations run on SQLite and PostgreSQL. On SQLite, Alembic's batch mode
rebuilds a table to alter it (copy, drop, rename). With foreign keys on,
dropping the old users table would cascade-delete every entry, so migrations
run with foreign keys off and check integrity afterwards. PostgreSQL alters
tables in place, so batch mode is for SQLite only.
"""

from alembic import context

from storage.db import MIGRATION_LOCK
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Must run outside a transaction to take effect, so on the raw driver connection.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        # One transaction around everything, opened before Alembic reads the current version:
        # on SQLite it is BEGIN IMMEDIATE (see storage/db.py), so when several processes start
        # on a fresh data directory one migrates and the others wait, then find nothing to do.
        # Left to itself Alembic reads the version first and commits each step on its own, so
        # a second process would replay a step the first had just applied. PostgreSQL's DDL is
        # transactional too; there the first statement takes an advisory lock, held to commit,
        # for the same effect.
        with connection.begin():
            if not sqlite:
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            context.configure(connection=connection, target_metadata=target_metadata,
                              render_as_batch=sqlite, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left {len(broken)} rows with broken references")
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


run_migrations_online()
