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

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import SettingsError

ENV_PREFIX = "MODSTREAM_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
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
        default=64, ge=1, le=4096, description="Most posts per micro-batch."
    )
    realtime_batch_window_ms: int = Field(
        default=25, ge=0, le=10_000, description="Longest wait to fill a micro-batch."
    )
    model_variant: Literal["auto", "int8", "fp32", "fp16", "optimized"] = Field(
        default="auto", description="ONNX variant: auto = fp16 on GPU, int8 on CPU."
    )
    model_providers: str = Field(
        default="",
        description="Comma-separated ONNX Runtime providers in order of preference "
        "(empty: TensorRT, CUDA, CPU).",
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
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server!r}")
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
        }

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
