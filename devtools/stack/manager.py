"""``up`` / ``down`` / ``status`` of the whole local stack: Kafka, Postgres, topics, migrations."""

from __future__ import annotations

import asyncio
import fcntl
from dataclasses import dataclass, field
from pathlib import Path

from devtools.stack._process import Echo
from devtools.stack.cluster import KafkaCluster
from devtools.stack.kafka import ServiceState
from devtools.stack.postgres import PostgresServer
from pipeline.config import Settings
from pipeline.errors import StackError
from pipeline.kafka.admin import ensure_topics
from pipeline.log import get_logger
from pipeline.store.migrate import migrate

log = get_logger(__name__)


@dataclass(frozen=True)
class StackStatus:
    """Where the local services run; what this call started, created or applied."""

    state_dir: Path
    bootstrap_servers: str
    dsn: str
    kafka: ServiceState
    postgres: ServiceState
    kafka_nodes: list[ServiceState] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    topics_created: list[str] = field(default_factory=list)
    migrations_applied: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.kafka.running and self.postgres.running

    def lines(self) -> list[str]:
        """A human-readable summary (the password in the DSN is masked)."""
        out = [f"state dir:  {self.state_dir}"]
        nodes = self.kafka_nodes if len(self.kafka_nodes) > 1 else [self.kafka]
        for svc in (*nodes, self.postgres):
            where = f"pid {svc.pid}" if svc.running else "stopped"
            out.append(f"{svc.name + ':':<11} {where}  data {svc.data_dir}  log {svc.log_file}")
        out.append(f"bootstrap:  {self.bootstrap_servers}")
        out.append(f"postgres:   {self.dsn}")
        return out


def _services(settings: Settings) -> tuple[KafkaCluster, PostgresServer]:
    return KafkaCluster(settings), PostgresServer(settings)


def status(settings: Settings) -> StackStatus:
    """Report the local stack without changing anything."""
    cluster, server = _services(settings)
    return StackStatus(
        state_dir=settings.state_dir.resolve(),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        dsn=server.dsn.masked(),
        kafka=cluster.state(),
        postgres=server.state(),
        kafka_nodes=cluster.states(),
    )


class _StackLock:
    """One ``up``/``down`` at a time per state dir, across processes (an flock)."""

    def __init__(self, settings: Settings) -> None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self._handle = (settings.state_dir / "stack.lock").open("w")

    def acquire(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


async def up(settings: Settings, echo: Echo = print) -> StackStatus:
    """Start whatever is not running, then ensure topics and migrations. Idempotent."""
    cluster, server = _services(settings)
    lock = _StackLock(settings)
    await asyncio.to_thread(lock.acquire)
    try:
        started = await asyncio.to_thread(cluster.launch, echo)
        if server.pid() is None:
            echo(f"postgres: starting server on {server.dsn.host}:{server.dsn.port}")
            await asyncio.to_thread(server.start)
            started.append("postgres")
        else:
            echo(f"postgres: already running (pid {server.pid()})")
        await server.ensure_database()
        if any(name.startswith("kafka") for name in started):
            echo(f"kafka: waiting for {len(cluster.nodes)} broker(s) to answer metadata requests")
        await cluster.wait_ready()
    finally:
        lock.release()
    applied = await migrate(settings.postgres_dsn.get_secret_value())
    echo(f"postgres: applied {', '.join(applied)}" if applied else "postgres: schema up to date")
    created = await ensure_topics(settings)
    echo(f"kafka: created topics {', '.join(created)}" if created else "kafka: topics present")
    result = status(settings)
    result = StackStatus(
        **{**result.__dict__, "started": started, "topics_created": created,
           "migrations_applied": applied},
    )  # fmt: skip
    log.info("stack.up", started=started, topics_created=created, migrations_applied=applied)
    return result


def down(settings: Settings, echo: Echo = print, timeout: float = 30.0) -> list[str]:
    """Stop both services and check that no process of this state dir is left; return stopped."""
    cluster, server = _services(settings)
    stopped: list[str] = []
    lock = _StackLock(settings)
    lock.acquire()
    try:
        for name, service in (("kafka", cluster), ("postgres", server)):
            if service.stop(timeout):
                stopped.append(name)
                echo(f"{name}: stopped")
            else:
                echo(f"{name}: not running")
        left = [*cluster.leftovers(), *server.leftovers()]
    finally:
        lock.release()
    if left:
        pids = ", ".join(str(proc.pid) for proc in left)
        raise StackError(f"processes of {settings.state_dir} survived `down`: {pids}; kill them")
    log.info("stack.down", stopped=stopped)
    return stopped
