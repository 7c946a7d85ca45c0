"""Fault injection against a private local stack: kill -9 and restart Kafka or Postgres.

A :class:`ChaosStack` is a local stack (``modstream up``'s Kafka and Postgres, same jars and
binaries) with its own state dir and free ports, so killing it never disturbs a developer's stack
or the test suite's. Killing takes a service's whole process tree down with SIGKILL, as a crashed
host would; starting again reuses the same data, as a restarted pod with a volume would.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
from pydantic import SecretStr

from pipeline.config import Settings
from pipeline.stack import down, up
from pipeline.stack.kafka import KafkaBroker
from pipeline.stack.postgres import PostgresServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_tree(pid: int | None) -> None:
    """SIGKILL ``pid`` and all its descendants, and wait until they are gone."""
    if pid is None:
        raise RuntimeError("nothing to kill: the service is not running")
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)


class ChaosStack:
    """Kafka and Postgres on free ports under ``root``, to be killed and restarted at will."""

    def __init__(self, base: Settings, root: Path, **overrides: Any) -> None:
        # A fresh Settings, not model_copy: derived values (the listener) are cached properties.
        self.settings = type(base)(
            **{
                **base.model_dump(),
                "state_dir": root,
                "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                "kafka_controller_port": free_port(),
                "postgres_dsn": SecretStr(
                    f"postgresql://modstream:modstream@127.0.0.1:{free_port()}/modstream"
                ),
                **overrides,
            }
        )

    async def up(self) -> None:
        await up(self.settings, echo=lambda *_: None)

    def down(self) -> None:
        down(self.settings, echo=lambda *_: None)

    def kill_postgres(self) -> None:
        """SIGKILL the postmaster and every backend (no clean shutdown, no checkpoint)."""
        kill_tree(PostgresServer(self.settings).pid())

    async def start_postgres(self) -> float:
        """Start Postgres again; returns the seconds it took to accept connections."""
        started = time.monotonic()
        await asyncio.to_thread(PostgresServer(self.settings).start)
        return time.monotonic() - started

    def kill_kafka(self) -> None:
        """SIGKILL the broker JVM (no controlled shutdown)."""
        kill_tree(KafkaBroker(self.settings).pid())

    async def start_kafka(self) -> float:
        """Start the broker again; returns the seconds until it answered metadata requests."""
        started = time.monotonic()
        broker = KafkaBroker(self.settings)
        await asyncio.to_thread(broker.start)
        await broker.wait_ready()
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def chaos_stack(base: Settings, root: Path, **overrides: Any) -> AsyncIterator[ChaosStack]:
    """Start a private stack and always stop it afterwards."""
    stack = ChaosStack(base, root, **overrides)
    try:
        await stack.up()
        yield stack
    finally:
        await asyncio.to_thread(stack.down)
