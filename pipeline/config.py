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
    metrics_host: str = Field(
        default="127.0.0.1", description="Bind address of health/metrics endpoints."
    )
    realtime_metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="Health/metrics port of the real-time stage."
    )

    # --- frontier (Anthropic) ------------------------------------------------------------------
    anthropic_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="Anthropic API key (a k8s Secret); any non-empty value suits the simulator.",
    )
    anthropic_base_url: str | None = Field(
        default=None,
        description="API base URL; set it to the simulator (http://127.0.0.1:28080). "
        "Unset means the real Anthropic API.",
    )
    anthropic_model: str = Field(
        default="claude-haiku-4-5", description="Model for borderline posts (all three modes)."
    )
    anthropic_max_tokens: int = Field(
        default=512, ge=64, description="max_tokens of a real-time verdict call."
    )
    anthropic_analysis_max_tokens: int = Field(
        default=2048, ge=64, description="max_tokens of a streamed reviewer analysis."
    )
    frontier_max_rationale_chars: int = Field(
        default=400, ge=40, le=4000, description="Longest rationale accepted in a verdict."
    )
    frontier_price_input_per_mtok: float = Field(
        default=1.0, ge=0, description="USD per million uncached input tokens."
    )
    frontier_price_output_per_mtok: float = Field(
        default=5.0, ge=0, description="USD per million output tokens."
    )
    frontier_price_cache_write_per_mtok: float = Field(
        default=1.25, ge=0, description="USD per million cache-write input tokens."
    )
    frontier_price_cache_read_per_mtok: float = Field(
        default=0.10, ge=0, description="USD per million cache-read input tokens."
    )
    frontier_batch_price_multiplier: float = Field(
        default=0.5, gt=0, le=1, description="Price multiplier of the Message Batches API."
    )
    frontier_concurrency: int = Field(
        default=64, ge=1, description="Most provider calls in flight at once (per process)."
    )
    frontier_max_in_flight: int = Field(
        default=256, ge=1, description="Most borderline requests being decided at once."
    )
    frontier_rate_limit_rps: float = Field(
        default=50.0, gt=0, description="Provider requests per second (token bucket rate)."
    )
    frontier_rate_limit_burst: int = Field(
        default=100, ge=1, description="Token bucket size: requests allowed in a burst."
    )
    frontier_max_attempts: int = Field(
        default=3, ge=1, description="Most provider attempts per post (retries are budgeted)."
    )
    frontier_backoff_base_seconds: float = Field(
        default=0.1, ge=0, description="First retry back-off (doubles, full jitter)."
    )
    frontier_backoff_max_seconds: float = Field(
        default=1.0, ge=0, description="Longest retry back-off (retry-after may exceed it)."
    )
    frontier_expected_call_seconds: float = Field(
        default=1.5, gt=0, description="Retry only while at least this much budget is left."
    )
    frontier_publish_margin_seconds: float = Field(
        default=0.3, ge=0, description="Budget kept back to publish a decision before its deadline."
    )
    frontier_breaker_window_seconds: float = Field(
        default=10.0, gt=0, description="Circuit breaker: sliding window of call outcomes."
    )
    frontier_breaker_min_calls: int = Field(
        default=20, ge=1, description="Circuit breaker: calls in the window before it may open."
    )
    frontier_breaker_failure_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Circuit breaker: failure share (429/529/5xx) that opens it.",
    )
    frontier_breaker_open_seconds: float = Field(
        default=5.0, gt=0, description="Circuit breaker: time open before a half-open probe."
    )
    frontier_fallback_remove_threshold: float = Field(
        default=0.6, ge=0, le=1, description="Fallback: provisional REMOVE if max score >= this."
    )
    frontier_batch_poll_initial_seconds: float = Field(
        default=1.0, gt=0, description="First wait between Message Batch status polls."
    )
    frontier_batch_poll_max_seconds: float = Field(
        default=60.0, gt=0, description="Longest wait between Message Batch status polls."
    )
    frontier_group_id: str = Field(
        default="modstream-frontier", description="Kafka consumer group of the frontier stage."
    )
    frontier_metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Port of the frontier stage's health/metrics."
    )

    # --- replay ------------------------------------------------------------------------------
    replay_chunk_size: int = Field(
        default=4096,
        ge=1,
        le=100_000,
        description="Posts per replay chunk: one inference call, one transaction, one checkpoint.",
    )
    replay_queue_depth: int = Field(
        default=2, ge=1, le=64, description="Chunks buffered between read, inference and write."
    )
    replay_max_text_chars: int = Field(
        default=20_000, ge=1, description="Longer post texts are cut to this before scoring."
    )
    replay_flip_severity: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="allow<->remove flips at/above this severity go to review (batch_flip).",
    )
    replay_frontier_batches: bool = Field(
        default=True, description="Send borderline posts to the Message Batches API."
    )
    replay_batch_max_requests: int = Field(
        default=100_000, ge=1, le=100_000, description="Most requests per Message Batch."
    )
    replay_batch_max_bytes: int = Field(
        default=250_000_000,
        ge=1024,
        le=256_000_000,
        description="Most request bytes per Message Batch (API limit 256 MB).",
    )
    replay_batch_timeout_seconds: float = Field(
        default=25 * 3600.0, gt=0, description="Longest wait for Message Batches to end."
    )
    replay_samples_per_transition: int = Field(
        default=10, ge=0, le=1000, description="Changed post ids kept per transition in reports."
    )
    replay_webhook_url: str | None = Field(
        default=None, description="POST the final replay report (JSON) here; unset: no webhook."
    )
    replay_webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one webhook attempt."
    )
    replay_webhook_retries: int = Field(
        default=3, ge=0, le=20, description="Webhook retries after the first attempt."
    )
    replay_shard_index: int = Field(default=0, ge=0, description="Default shard of this process.")
    replay_shard_count: int = Field(default=1, ge=1, description="Default number of shards.")
    replay_max_outage_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A replay waits this long for Postgres, the broker or the Message Batches API "
        "to come back, then stops (resumable).",
    )

    # --- review queue ------------------------------------------------------------------------
    review_host: str = Field(
        default="127.0.0.1", description="Bind address of the review web UI and JSON API."
    )
    review_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the review web UI and JSON API."
    )
    review_metrics_port: int = Field(
        default=9103,
        ge=0,
        le=65535,
        description="Health/metrics port of the review app (kept off the UI port: metrics name "
        "reviewers).",
    )
    review_lease_seconds: float = Field(
        default=600.0, gt=0, description="How long a claim lasts; an abandoned item returns after."
    )
    review_session_ttl_seconds: float = Field(
        default=8 * 3600.0, gt=0, description="Reviewer sessions expire this long after login."
    )
    review_aging_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Queue priority = severity + age / this: an item gains one severity unit "
        "of priority per this many seconds of waiting.",
    )
    review_blur_severity: float = Field(
        default=0.7, ge=0, le=1, description="Posts at or above this severity are blurred."
    )
    review_cookie_secure: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure and __Host- prefixed. Unset: on unless "
        "review_host is loopback; true/false overrides.",
    )
    review_session_idle_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="Reviewer sessions end after this long without a request (within the TTL).",
    )
    review_login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins per username within the window before logins answer 429.",
    )
    review_login_max_failures_per_address: int = Field(
        default=20,
        ge=1,
        description="Failed logins per client address within the window before 429.",
    )
    review_login_window_seconds: float = Field(
        default=900.0, gt=0, description="Sliding window of the login failure limits."
    )
    review_password_workers: int = Field(
        default=2, ge=1, le=64, description="Threads that run argon2 off the event loop."
    )
    review_password_queue: int = Field(
        default=32,
        ge=1,
        description="Password checks allowed to wait for a thread; more answer 503.",
    )
    review_analysis_per_session: int = Field(
        default=1, ge=1, description="Streamed analyses one session may run at once."
    )
    review_analysis_max_seconds: float = Field(
        default=120.0, gt=0, description="Longest streamed analysis; it is cut off after this."
    )
    review_analysis_per_user_per_minute: float = Field(
        default=1.0, gt=0, description="Streamed analyses a reviewer may start per minute."
    )
    review_analysis_burst: int = Field(
        default=5, ge=1, description="Analyses a reviewer may start at once before the rate."
    )
    review_analysis_tokens_per_minute: int = Field(
        default=20000,
        ge=64,
        description="Token budget of all reviewers' analyses, apart from the frontier stage's.",
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
