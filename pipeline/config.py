"""The one settings object for every modstream process.

Values come from (highest first): keyword arguments, ``MODSTREAM_*`` environment variables, a
``.env`` file in the working directory, then the defaults below. ``k8s/`` ConfigMaps use the same
names. Secrets are :class:`~pydantic.SecretStr` and never appear in logs or ``as_dict()``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.config_audit import AuditSettings
from pipeline.config_budget import BudgetSettings
from pipeline.config_cost import CostSettings
from pipeline.config_registry import RegistrySettings
from pipeline.config_sections import FrontierSettings, ReplaySettings, ReviewSettings
from pipeline.config_shadow import ShadowSettings
from pipeline.errors import SettingsError

ENV_PREFIX = "MODSTREAM_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(
    FrontierSettings,
    ReplaySettings,
    ReviewSettings,
    BudgetSettings,
    CostSettings,
    AuditSettings,
    RegistrySettings,
    ShadowSettings,
    BaseSettings,
):
    """Validated configuration. Build it with :func:`load_settings` to get readable errors."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- local state -------------------------------------------------------------------------
    state_dir: Path = Field(
        default=PROJECT_ROOT / ".modstream",
        description="Folder for local Kafka/Postgres data, built models and logs (git-ignored).",
    )

    # --- Kafka ---------------------------------------------------------------------------------
    # Declared before the bootstrap servers: their validator reads the broker count.
    kafka_brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Brokers of the local Kafka cluster (`modstream up --brokers N`). With N > 1, "
        "a single bootstrap server host:port stands for node 1 and nodes 2..N listen on port "
        "+10, +20, ... (controller ports likewise); the list is expanded to all N.",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_controller_port: int = Field(
        default=19093, ge=1, le=65535, description="KRaft controller port of the local broker."
    )
    kafka_client_id: str = Field(default="modstream", description="Client id prefix.")
    topic_posts: str = Field(default="posts.ingest", description="Ingest topic of new posts.")
    topic_decisions: str = Field(
        default="moderation.decisions", description="Every decision, whatever the stage."
    )
    topic_borderline: str = Field(
        default="moderation.borderline", description="Borderline requests for the frontier stage."
    )
    topic_review: str = Field(
        default="moderation.review", description="Items that entered the human review queue."
    )
    topic_dead_letter: str = Field(
        default="posts.dead-letter", description="Malformed events with their reason."
    )
    partitions_posts: int = Field(default=6, ge=1, description="Partitions of the ingest topic.")
    partitions_decisions: int = Field(default=6, ge=1, description="Partitions of decisions.")
    partitions_borderline: int = Field(default=3, ge=1, description="Partitions of borderline.")
    partitions_review: int = Field(default=1, ge=1, description="Partitions of the review topic.")
    partitions_dead_letter: int = Field(default=1, ge=1, description="Partitions of dead letters.")
    max_post_bytes: int = Field(
        default=65_536, ge=1024, description="Events larger than this are dead-lettered."
    )
    kafka_max_message_bytes: int = Field(
        default=1_000_000,
        ge=65_536,
        description="Largest record the broker accepts (its message.max.bytes); a record that "
        "would exceed it is refused before it is sent and its post dead-lettered.",
    )
    dead_letter_max_value_bytes: int = Field(
        default=16_384,
        ge=256,
        description="Dead letters carry at most this many bytes of the original record (plus its "
        "length and sha256), so they always fit the broker's limit.",
    )
    outage_backoff_max_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait between retries while Postgres, the broker or the provider is "
        "unreachable (capped exponential back-off from 0.2 s).",
    )

    # --- Postgres ------------------------------------------------------------------------------
    postgres_dsn: SecretStr = Field(
        default=SecretStr("postgresql://modstream:modstream@127.0.0.1:15432/modstream"),
        description="asyncpg DSN. The local stack creates this user and database.",
    )

    # --- model and policy ----------------------------------------------------------------------
    model_dir: Path | None = Field(
        default=None, description="Built models folder (default: <state_dir>/models)."
    )
    policy_path: Path | None = Field(
        default=None, description="Policy file (default: the policy shipped in pipeline/policies)."
    )
    sla_seconds: float = Field(
        default=5.0, gt=0, description="Near-real-time SLA, measured from ingest."
    )

    # --- real-time stage ---------------------------------------------------------------------
    realtime_group_id: str = Field(
        default="modstream-realtime", description="Consumer group of the real-time processors."
    )
    realtime_max_batch: int = Field(
        default=256, ge=1, le=4096, description="Most posts per micro-batch."
    )
    realtime_batch_window_ms: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Longest wait to fill a micro-batch. 0 (adaptive): score at once what has "
        "arrived when the model is idle; batch only what queued while it was busy.",
    )
    realtime_calibrate_batch: bool = Field(
        default=True,
        description="At start, measure the classifier's latency curve and cap micro-batches at "
        "its knee (the smallest size within 5 % of the best throughput), at most "
        "MODSTREAM_REALTIME_MAX_BATCH.",
    )
    realtime_engine: Literal["aiokafka", "faust"] = Field(
        default="aiokafka",
        description="Consumer engine of the real-time stage: aiokafka (commit after ack, "
        "rebalance barrier) or faust (faust-streaming agent; see pipeline/realtime/ENGINES.md).",
    )
    model_variant: Literal["auto", "int8", "fp32", "fp16", "optimized"] = Field(
        default="auto", description="ONNX variant: auto = fp16 on GPU, int8 on CPU."
    )
    model_providers: str = Field(
        default="",
        description="Comma-separated ONNX Runtime providers in order of preference "
        "(empty: TensorRT, CUDA, CPU).",
    )
    onnx_threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="ONNX Runtime intra-op threads per process: the cores the classifier's one "
        "inference thread spreads each batch over. 0: ONNX Runtime's default, one per physical "
        "core of the machine (in a container, set it to the CPU limit).",
    )
    onnx_spin_wait: bool = Field(
        default=False,
        description="Let ONNX Runtime's intra-op threads busy-wait between parallel sections. "
        "Off: the real-time stage shares its cores with decoding, Kafka and Postgres, and "
        "spinning threads take them (bench realtime: ratio_vs_raw 0.70-0.76 with it on, 0.86 off). "
        "On only for a process that does nothing but score.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Bind address of health/metrics endpoints."
    )
    realtime_metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="Health/metrics port of the real-time stage."
    )

    # --- logging -------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Minimum log level."
    )
    log_format: Literal["json", "console"] = Field(
        default="json", description="json for machines (k8s), console for people."
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str, info: ValidationInfo) -> str:
        servers = [server.strip() for server in value.split(",")]
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server!r}")
        brokers = info.data.get("kafka_brokers", 1)
        if brokers > 1 and len(servers) == 1:  # node i listens on the first port + 10 * (i - 1)
            host, _, port = servers[0].rpartition(":")
            return ",".join(f"{host}:{int(port) + 10 * i}" for i in range(brokers))
        if brokers > 1 and len(servers) != brokers:
            raise ValueError(
                f"MODSTREAM_KAFKA_BROKERS={brokers} needs one host:port (the others follow at "
                f"+10, +20, ...) or exactly {brokers}, got {len(servers)}"
            )
        return value

    @field_validator("postgres_dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"postgres", "postgresql"} or not parts.hostname:
            raise ValueError("expected postgresql://user:password@host:port/database")
        return value

    # --- derived values ------------------------------------------------------------------------
    @cached_property
    def kafka_listener(self) -> tuple[str, int]:
        """Host and port of the first bootstrap server (the local broker listens there)."""
        host, _, port = self.kafka_bootstrap_servers.split(",")[0].strip().rpartition(":")
        return host, int(port)

    @property
    def models_path(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.state_dir / "models"

    def topic_partitions(self) -> dict[str, int]:
        """Every topic the pipeline uses, with its partition count."""
        return {
            self.topic_posts: self.partitions_posts,
            self.topic_decisions: self.partitions_decisions,
            self.topic_borderline: self.partitions_borderline,
            self.topic_review: self.partitions_review,
            self.topic_dead_letter: self.partitions_dead_letter,
            self.topic_shadow: self.partitions_shadow,
        }

    def as_env(self) -> dict[str, str]:
        """``MODSTREAM_*`` variables that make a child process load exactly these settings.

        Secrets are revealed: pass the result only to a child process's environment.
        """
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return env

    def as_dict(self) -> dict[str, Any]:
        """Settings as plain values with secrets masked, safe to log or print."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation errors into one :class:`SettingsError`.

    The message names each bad environment variable, so an operator knows what to fix.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
