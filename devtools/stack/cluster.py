"""The local Kafka cluster: ``MODSTREAM_KAFKA_BROKERS`` nodes of :class:`KafkaBroker`.

``up`` starts every node that is not running, then waits until each is a live broker. ``down``
stops every node and also any ``kafka.Kafka`` process under ``<state_dir>/kafka`` (a node of an
earlier run with another broker count, a node whose pid file was lost), so nothing survives it.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import psutil

from devtools.stack import _process
from devtools.stack._process import Echo
from devtools.stack.kafka import MAIN_CLASS, KafkaBroker, ServiceState
from pipeline.config import Settings
from pipeline.errors import StackError


class KafkaCluster:
    """All local Kafka nodes of one state dir."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nodes = [KafkaBroker(settings, i) for i in range(1, settings.kafka_brokers + 1)]
        self.root = self.nodes[0].root

    def node(self, node_id: int) -> KafkaBroker:
        """Node ``node_id`` (1-based)."""
        if not 1 <= node_id <= len(self.nodes):
            raise StackError(f"no Kafka node {node_id}: the cluster has {len(self.nodes)}")
        return self.nodes[node_id - 1]

    def stopped(self) -> list[KafkaBroker]:
        return [node for node in self.nodes if node.pid() is None]

    def states(self) -> list[ServiceState]:
        return [node.state() for node in self.nodes]

    def state(self) -> ServiceState:
        """One line for the whole cluster: running only if every node runs."""
        states = self.states()
        if len(states) == 1:
            return states[0]
        return ServiceState(
            name="kafka",
            running=all(s.running for s in states),
            pid=states[0].pid,
            address=self.settings.kafka_bootstrap_servers,
            data_dir=self.root,
            log_file=states[0].log_file,
        )

    def _foreign(self) -> list[psutil.Process]:
        """Kafka processes of this state dir that belong to none of the configured nodes."""
        ours = {proc.pid for node in self.nodes for proc in node.leftovers()}
        return [proc for proc in self.leftovers() if proc.pid not in ours]

    def launch(self, echo: Echo) -> list[str]:
        """Start the nodes that are down, without waiting; return the names of those started.

        Every node is launched before any is waited for: a KRaft quorum needs a majority.
        """
        foreign = self._foreign()
        if foreign:
            pids = ", ".join(str(proc.pid) for proc in foreign)
            raise StackError(
                f"Kafka processes of another broker count run in {self.root} (pids {pids}); "
                f"run `modstream down` with the MODSTREAM_KAFKA_BROKERS they were started with"
            )
        started: list[str] = []
        for node in self.nodes:
            name = node.state().name
            if node.pid() is not None:
                echo(f"{name}: already running (pid {node.pid()})")
                continue
            node.install(echo)
            echo(f"{name}: starting on {node.host}:{node.port}")
            node.start()
            started.append(name)
        return started

    async def wait_ready(self) -> None:
        """Return once every node is a live broker of the cluster."""
        for node in self.nodes:
            await node.wait_ready()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node (and any Kafka process under the state dir). True if one ran.

        The nodes are stopped together: stopped one by one, the last ones would wait out their
        controlled shutdown for a controller quorum that is already gone.
        """
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            stopped = any(list(pool.map(lambda node: node.stop(timeout), self.nodes)))
        left = self.leftovers()
        if left:
            with ThreadPoolExecutor(max_workers=len(left)) as pool:
                list(
                    pool.map(lambda p: _process.stop_process(p.pid, signal.SIGTERM, timeout), left)
                )
        return stopped or bool(left)

    def leftovers(self) -> list[psutil.Process]:
        """Every live Kafka process whose config lies under ``<state_dir>/kafka``."""
        return _process.find_processes([f"{MAIN_CLASS} {self.root}/"])
