"""A local single-node Apache Kafka broker in KRaft mode: jars from Maven Central, no Docker."""

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

from pipeline.config import Settings
from pipeline.errors import StackError
from pipeline.log import get_logger
from pipeline.stack import _process
from pipeline.stack._process import Echo

KAFKA_VERSION = "3.9.1"
MAIN_CLASS = "kafka.Kafka"
HEAP = ("-Xms256m", "-Xmx512m")

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
    return resources.files("pipeline.stack").joinpath("kafka-pom.xml").read_text("utf-8")


class KafkaBroker:
    """Installs, starts, stops and reports one broker whose files live in ``<state_dir>/kafka``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host, self.port = settings.kafka_listener
        self.controller_port = settings.kafka_controller_port
        self.home = (settings.state_dir / "kafka").resolve()
        self.libs = self.home / "libs"
        self.data_dir = self.home / "data"
        self.log_dir = self.home / "logs"
        self.log_file = self.log_dir / "server.log"
        self.properties = self.home / "server.properties"
        self.log4j = self.home / "log4j.properties"
        self.pid_file = self.home / "kafka.pid"
        self.cluster_id_file = self.home / "cluster.id"
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
        self.home.mkdir(parents=True, exist_ok=True)
        pom = self.home / "pom.xml"
        text = _pom_text()
        pom.write_text(text, encoding="utf-8")
        staging = self.home / "libs.partial"
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

    def _write_config(self) -> None:
        host, port, cport = self.host, self.port, self.controller_port
        lines = [
            "# Written by `modstream up`; edits are overwritten.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{cport}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "auto.create.topics.enable=false",
            "num.partitions=1",
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
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
        return [
            java, *HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
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
            name="kafka",
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
        log.info("kafka.started", pid=proc.pid, listener=f"{self.host}:{self.port}")
        return proc.pid

    async def wait_ready(self, budget_s: float = 90.0) -> None:
        """Wait until the broker answers a metadata request; raise StackError after ``budget_s``."""
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
                if cluster.get("brokers"):
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
            f"Kafka broker {reason}; see {self.log_file} (last lines below)\n"
            + _process.tail(self.log_file)
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``). True if one was running."""
        stopped = False
        pid = self.pid()
        if pid is not None:
            killed = _process.stop_process(pid, signal.SIGTERM, timeout)
            log.info("kafka.stopped", pid=pid, killed=killed)
            stopped = True
        for proc in self.leftovers():  # e.g. a broker whose pid file was lost
            _process.stop_process(proc.pid, signal.SIGTERM, timeout)
            stopped = True
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def leftovers(self) -> list[psutil.Process]:
        """Broker processes of this state dir that are still alive."""
        return _process.find_processes([f"{MAIN_CLASS} {self.properties}"])
