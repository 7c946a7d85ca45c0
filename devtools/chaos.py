"""Fault injection against a private local stack: kill -9 and restart Kafka or Postgres.

A :class:`ChaosStack` is a local stack (``modstream up``'s Kafka and Postgres, same jars and
binaries) with its own state dir and free ports, so killing it never disturbs a developer's stack
or the test suite's. Killing takes a service's whole process tree down with SIGKILL, as a crashed
host would; starting again reuses the same data, as a restarted pod with a volume would.

With ``brokers=3`` the stack's Kafka is a 3-node cluster: one node at a time can be killed
(:meth:`ChaosStack.kill_broker`), typically the leader of a busy partition
(:meth:`ChaosStack.leader`, :meth:`ChaosStack.busiest_partition`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from devtools.processes import free_port
from devtools.stack import KafkaCluster, down, up
from devtools.stack.kafka import PORT_STEP, KafkaBroker
from devtools.stack.postgres import PostgresServer
from pipeline.config import Settings


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(count: int, step: int = PORT_STEP) -> int:
    """A port ``p`` with ``p, p + step, ... p + (count - 1) * step`` all free."""
    for _ in range(100):
        base = free_port()
        if base + step * (count - 1) <= 65535 and all(
            _bindable(base + step * i) for i in range(1, count)
        ):
            return base
    raise RuntimeError(f"no block of {count} free ports {step} apart")


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
    """Kafka (``brokers`` nodes) and Postgres on free ports under ``root``, to be killed and
    restarted at will."""

    def __init__(self, base: Settings, root: Path, brokers: int = 1, **overrides: Any) -> None:
        # A fresh Settings, not model_copy: derived values (the listener) are cached properties,
        # and the bootstrap list is expanded to every node by validation.
        self._base = base
        self.settings = type(base)(
            **{
                **base.model_dump(),
                "state_dir": root,
                # The built model stays where the base settings keep it (not rebuilt per stack).
                "model_dir": base.models_path,
                "kafka_brokers": brokers,
                "kafka_bootstrap_servers": f"127.0.0.1:{free_port_block(brokers)}",
                "kafka_controller_port": free_port_block(brokers),
                "postgres_dsn": SecretStr(
                    f"postgresql://modstream:modstream@127.0.0.1:{free_port()}/modstream"
                ),
                **overrides,
            }
        )

    async def up(self) -> None:
        await asyncio.to_thread(self._share_jars)
        await up(self.settings, echo=lambda *_: None)

    def _share_jars(self) -> None:
        """Hard-link the base stack's Kafka jars when they match the pinned pom: saves a Maven
        run (10-20 s on a busy machine) per private stack. Otherwise ``up`` resolves them."""
        mine = KafkaBroker(self.settings)
        theirs = KafkaBroker(self._base)
        if mine.installed() or not theirs.installed():
            return
        mine.root.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copytree(theirs.libs, mine.libs, copy_function=os.link)
        except (OSError, shutil.Error):  # another file system, say: let Maven do it
            shutil.rmtree(mine.libs, ignore_errors=True)

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
        """SIGKILL every Kafka node (no controlled shutdown): the whole cluster is down."""
        for node in KafkaCluster(self.settings).nodes:
            kill_tree(node.pid())

    async def start_kafka(self) -> float:
        """Start every node again; returns the seconds until all answered metadata requests."""
        started = time.monotonic()
        cluster = KafkaCluster(self.settings)
        await asyncio.to_thread(cluster.launch, lambda *_: None)
        await cluster.wait_ready()
        return time.monotonic() - started

    def kill_broker(self, node_id: int) -> None:
        """SIGKILL one Kafka node (1-based): its partitions lose a replica, maybe their leader."""
        kill_tree(KafkaCluster(self.settings).node(node_id).pid())

    async def start_broker(self, node_id: int) -> float:
        """Start one node again; returns the seconds until the cluster lists it as live."""
        started = time.monotonic()
        node = KafkaCluster(self.settings).node(node_id)
        await asyncio.to_thread(node.start)
        await node.wait_ready()
        return time.monotonic() - started

    async def partitions(self, topic: str, within: float = 30.0) -> list[dict[str, Any]]:
        """The metadata of each partition of ``topic``: partition, leader, replicas, isr.

        Asks again until ``within`` runs out when the answer cannot be trusted yet: a broker
        that has not learnt a new topic from the metadata log answers with an error, and the
        admin client may pick a node that was just killed.
        """
        deadline = time.monotonic() + within
        problem = ""
        while time.monotonic() < deadline:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap_servers, request_timeout_ms=3000
            )
            try:
                await admin.start()
                described = (await admin.describe_topics([topic]))[0]
                if described["error_code"] == 0 and described["partitions"]:
                    return list(described["partitions"])
                problem = f"error code {described['error_code']}"
            except KafkaError as exc:
                problem = type(exc).__name__
            finally:
                await admin.close()
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{topic} not described within {within:.0f} s: {problem}")

    async def leader(self, topic: str, partition: int) -> int:
        """Node id of the current leader of ``topic``/``partition`` (-1 while it has none)."""
        rows = [p for p in await self.partitions(topic) if p["partition"] == partition]
        return int(rows[0]["leader"]) if rows else -1

    async def busiest_partition(self, topic: str) -> int:
        """The partition of ``topic`` holding the most records (the highest end offset)."""
        partitions = [TopicPartition(topic, p["partition"]) for p in await self.partitions(topic)]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await consumer.start()
        try:
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        return int(max(ends, key=lambda tp: ends[tp]).partition)


@contextlib.asynccontextmanager
async def chaos_stack(
    base: Settings, root: Path, brokers: int = 1, **overrides: Any
) -> AsyncIterator[ChaosStack]:
    """Start a private stack and always stop it afterwards."""
    stack = ChaosStack(base, root, brokers, **overrides)
    try:
        await stack.up()
        yield stack
    finally:
        await asyncio.to_thread(stack.down)
