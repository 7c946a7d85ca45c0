"""A local Apache Kafka node in KRaft mode: jars from Maven Central, no Docker.

With ``MODSTREAM_KAFKA_BROKERS=1`` (the default) the node lives in ``<state_dir>/kafka``. With
N > 1 node *i* lives in ``<state_dir>/kafka/node-<i>`` (its own data, logs, config and pid file);
the jars and the cluster id are shared in ``<state_dir>/kafka``. Node *i* listens on the *i*-th
bootstrap server and on ``MODSTREAM_KAFKA_CONTROLLER_PORT + 10 * (i - 1)``.

Every node of a cluster is a combined broker + controller (``process.roles=broker,controller``),
so the controller quorum has N voters. On a shared 2-core machine that is N JVMs instead of
N + 3, and a 3-voter quorum survives the loss of one node just as three dedicated controllers
would. It also makes a node's kill -9 the harsher fault: the quorum may have to elect a new active
controller while partition leadership moves. Dedicated controllers are what production runs
(Kafka discourages combined mode there); this local cluster is for development and tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psutil
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from devtools.stack import _process
from devtools.stack._process import Echo
from pipeline.config import Settings
from pipeline.errors import StackError
from pipeline.log import get_logger

KAFKA_VERSION = "3.9.1"
MAIN_CLASS = "kafka.Kafka"
HEAP = ("-Xms256m", "-Xmx512m")
CLUSTER_HEAP = ("-Xms128m", "-Xmx384m")  # per node when there are several: 2 cores, shared RAM
PORT_STEP = 10  # node i listens on the first node's ports + PORT_STEP * (i - 1)

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceState:
    """Where a local service runs and whether it is up."""

    name: str
    running: bool
    pid: int | None
    address: str
    data_dir: Path
    log_file: Path


def _pom_text() -> str:
    return resources.files("devtools.stack").joinpath("kafka-pom.xml").read_text("utf-8")


def node_address(settings: Settings, node_id: int) -> tuple[str, int, int]:
    """Host, client port and controller port of local node ``node_id`` (1-based)."""
    servers = settings.kafka_bootstrap_servers.split(",")
    host, _, port = servers[min(node_id, len(servers)) - 1].strip().rpartition(":")
    return host, int(port), settings.kafka_controller_port + PORT_STEP * (node_id - 1)


class KafkaBroker:
    """Installs, starts, stops and reports one node of the local cluster (see module doc)."""

    def __init__(self, settings: Settings, node_id: int = 1) -> None:
        self.settings = settings
        self.node_id = node_id
        self.nodes = settings.kafka_brokers
        self.host, self.port, self.controller_port = node_address(settings, node_id)
        self.root = (settings.state_dir / "kafka").resolve()
        self.home = self.root if self.nodes == 1 else self.root / f"node-{node_id}"
        self.libs = self.root / "libs"
        self.data_dir = self.home / "data"
        self.log_dir = self.home / "logs"
        self.log_file = self.log_dir / "server.log"
        self.properties = self.home / "server.properties"
        self.log4j = self.home / "log4j.properties"
        self.pid_file = self.home / "kafka.pid"
        self.cluster_id_file = self.root / "cluster.id"
        self._stamp = self.libs / ".installed"

    # --- install ------------------------------------------------------------------------------
    def installed(self) -> bool:
        """True if the jars for the pinned pom are present."""
        pom_hash = hashlib.sha256(_pom_text().encode("utf-8")).hexdigest()
        return self._stamp.is_file() and self._stamp.read_text("utf-8").strip() == pom_hash

    def install(self, echo: Echo) -> None:
        """Resolve the broker jars with Maven (``~/.m2`` caches them) into ``libs/``."""
        if self.installed():
            return
        mvn = shutil.which("mvn")
        if mvn is None or shutil.which("java") is None:
            raise StackError(
                "the local Kafka broker needs Java 17+ and Maven 3.8+ on PATH "
                "(Debian: apt-get install openjdk-17-jre-headless maven)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        pom = self.root / "pom.xml"
        text = _pom_text()
        pom.write_text(text, encoding="utf-8")
        staging = self.root / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        echo(f"kafka: resolving Apache Kafka {KAFKA_VERSION} jars with Maven into {self.libs}")
        echo("kafka: the first run downloads about 100 MB from Maven Central into ~/.m2")
        started = time.monotonic()
        command = [
            mvn, "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]  # fmt: skip
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            raise StackError(
                f"Maven could not resolve the Kafka jars (exit {result.returncode}); check access "
                f"to https://repo.maven.apache.org and rerun `modstream up` (pom: {pom})"
            )
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        self._stamp.write_text(hashlib.sha256(text.encode("utf-8")).hexdigest(), "utf-8")
        jars = len(list(self.libs.glob("*.jar")))
        echo(f"kafka: {jars} jars installed in {time.monotonic() - started:.1f}s")

    # --- configuration ------------------------------------------------------------------------
    def _cluster_id(self) -> str:
        if self.cluster_id_file.is_file():
            return self.cluster_id_file.read_text("utf-8").strip()
        while True:  # Kafka's Uuid.randomUuid rejects ids starting with "-"
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cluster_id.startswith("-"):
                break
        self.cluster_id_file.write_text(cluster_id + "\n", "utf-8")
        return cluster_id

    def _replication_lines(self) -> list[str]:
        """Cluster-wide defaults; the pipeline's topics get theirs from ``ensure_topics``."""
        replicas = min(self.nodes, 3)
        min_isr = 2 if replicas >= 3 else 1
        lines = [
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
        ]
        if self.nodes > 1:
            # A killed node is fenced (and leaves every ISR) once it misses heartbeats for the
            # session timeout; loopback has no network jitter, so 6 s instead of 9 s is safe.
            lines += ["broker.heartbeat.interval.ms=1000", "broker.session.timeout.ms=6000"]
        return lines

    def _write_config(self) -> None:
        host, port, cport = self.host, self.port, self.controller_port
        voters = ",".join(
            f"{i}@{node_address(self.settings, i)[0]}:{node_address(self.settings, i)[2]}"
            for i in range(1, self.nodes + 1)
        )
        lines = [
            "# Written by `modstream up`; edits are overwritten.",
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "auto.create.topics.enable=false",
            "num.partitions=1",
            *self._replication_lines(),
            "offsets.topic.num.partitions=10",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "num.network.threads=2",
            "num.io.threads=4",
        ]
        self.properties.write_text("\n".join(lines) + "\n", "utf-8")
        self.log4j.write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
            "log4j.logger.state.change.logger=WARN\nlog4j.logger.kafka.log.LogCleaner=WARN\n",
            "utf-8",
        )

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java") or "java"
        heap = HEAP if self.nodes == 1 else CLUSTER_HEAP
        return [
            java, *heap, "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.log4j}", f"-Dkafka.logs.dir={self.log_dir}",
            "-cp", f"{self.libs}/*", main, *args,
        ]  # fmt: skip

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = self._java(
            "kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
            "-c", str(self.properties), "--ignore-formatted",
        )  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {self.data_dir} failed: "
                f"{(result.stderr or result.stdout).strip()[-800:]}; delete {self.home} to start "
                "from scratch"
            )

    # --- lifecycle ----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of the running broker of this state dir, or None."""
        pid = _process.read_pid(self.pid_file)
        return pid if _process.is_running(pid, f"{MAIN_CLASS} {self.properties}") else None

    def state(self) -> ServiceState:
        pid = self.pid()
        return ServiceState(
            name="kafka" if self.nodes == 1 else f"kafka-{self.node_id}",
            running=pid is not None,
            pid=pid,
            address=f"{self.host}:{self.port}",
            data_dir=self.data_dir,
            log_file=self.log_file,
        )

    def start(self) -> int:
        """Start the broker detached (it outlives this process); return its pid."""
        running = self.pid()
        if running is not None:
            return running
        for port in (self.port, self.controller_port):
            if _process.port_open(self.host, port):
                raise StackError(
                    f"port {self.host}:{port} is taken by another process; stop it or choose "
                    "other ports with MODSTREAM_KAFKA_BOOTSTRAP_SERVERS and "
                    "MODSTREAM_KAFKA_CONTROLLER_PORT"
                )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format_storage()
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                self._java(MAIN_CLASS, str(self.properties)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.home,
            )
        self.pid_file.write_text(f"{proc.pid}\n", "utf-8")
        log.info(
            "kafka.started", pid=proc.pid, node=self.node_id, listener=f"{self.host}:{self.port}"
        )
        return proc.pid

    async def wait_ready(self, budget_s: float = 90.0) -> None:
        """Wait until the cluster lists this node as a live broker; StackError after ``budget_s``.

        A restarted node of a cluster counts once the controller has unfenced it.
        """
        deadline = time.monotonic() + budget_s
        pid = self.pid()
        proc = psutil.Process(pid) if pid is not None else None
        up = await asyncio.to_thread(_process.wait_port, self.host, self.port, deadline, proc)
        while up:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id=f"{self.settings.kafka_client_id}-stack",
                request_timeout_ms=5000,
            )
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                live = {broker["node_id"] for broker in cluster.get("brokers") or []}
                if self.node_id in live:
                    return
            except KafkaError as exc:
                log.debug("kafka.not_ready", error=type(exc).__name__)
            finally:
                await admin.close()
            if time.monotonic() > deadline or self.pid() is None:
                break
            await asyncio.sleep(0.5)
        reason = "exited" if self.pid() is None else f"not ready after {budget_s:.0f}s"
        raise StackError(
            f"Kafka node {self.node_id} {reason}; see {self.log_file} (last lines below)\n"
            + _process.tail(self.log_file)
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``). True if one was running."""
        stopped = False
        pid = self.pid()
        if pid is not None:
            killed = _process.stop_process(pid, signal.SIGTERM, timeout)
            log.info("kafka.stopped", pid=pid, node=self.node_id, killed=killed)
            stopped = True
        for proc in self.leftovers():  # e.g. a broker whose pid file was lost
            _process.stop_process(proc.pid, signal.SIGTERM, timeout)
            stopped = True
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def leftovers(self) -> list[psutil.Process]:
        """Broker processes of this state dir that are still alive."""
        return _process.find_processes([f"{MAIN_CLASS} {self.properties}"])
