"""A real PostgreSQL server for the test session: initdb and pg_ctl on loopback, in a temporary folder.

`initdb` refuses to run as root, so when the tests run as root (CI does) the
server's commands run as the `postgres` user (runuser), in a folder that user
owns. Debian keeps the binaries in /usr/lib/postgresql/N/bin, not on PATH; they
are found there. The server is tuned for tests only (no fsync): it is thrown
away at the end of the session.

Each test gets its own database, copied from a template migrated once
(CREATE DATABASE ... TEMPLATE), so a test starts from a fresh schema in a few
milliseconds and never sees another test's rows.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from bot.llm.local_server import free_port

TEMPLATE = "spanner_template"


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        folder = Path(on_path).resolve().parent  # a link on PATH: the folder holding all the programs
        if all((folder / p).exists() for p in ("pg_ctl", "pg_dump", "pg_restore")):
            return folder
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no pg_ctl); fix: apt-get install postgresql "
                           "(.ci/run does this)")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, bin_dir: Path, folder: Path, port: int, as_user: list[str]):
        self.bin_dir, self.folder, self.port, self.as_user = bin_dir, folder, port, as_user
        self.data = folder / "data"
        self._numbers = itertools.count(1)

    @classmethod
    def start(cls) -> "PostgresServer":
        bin_dir = find_bin_dir()
        folder = Path(tempfile.mkdtemp(prefix="spanner-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:  # initdb will not run as root: hand the folder to postgres and run as them
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        server = cls(bin_dir, folder, free_port(), as_user)
        server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                    "--locale=C", "--no-sync")
        options = (f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        server._run("pg_ctl", "-D", str(server.data), "-l", str(folder / "server.log"), "-o", options, "-w",
                    "-t", "60", "start")
        try:
            server._make_template()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bin_dir / program), *args], capture_output=True,
                              cwd=self.folder, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def _make_template(self) -> None:
        from storage.db import make_engine, upgrade
        self.admin(f"CREATE DATABASE {TEMPLATE}")
        engine = make_engine(self.url(TEMPLATE))
        upgrade(engine)
        engine.dispose()  # a template must have no connections while it is copied

    def fresh_database(self, migrated: bool = True) -> str:
        """A new database (migrated to head, or empty) and its storage.url."""
        name = f"t{os.getpid()}_{next(self._numbers)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
