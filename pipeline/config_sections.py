"""Sections of :class:`~pipeline.config.Settings` for the frontier, the replay and the review app.

They are mixins of the one Settings (same ``MODSTREAM_*`` names); they live here only to keep
each module short. Components never receive these: their composition roots slice small typed
configs out of Settings.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class FrontierSettings(BaseModel):
    """The Anthropic provider and the near-real-time stage."""

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
        default="claude-haiku-4-5",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$",
        description="Model for borderline posts (all three modes); it is every frontier"
        " decision's model version, so letters, digits and . _ : @ / - only.",
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
    # Prices: Claude Haiku 4.5 (the default model), as of 2026-12-02, from Anthropic's pricing
    # table in https://platform.claude.com/docs/en/build-with-claude/prompt-caching
    # (base input $1, 5-minute cache write 1.25x, 1-hour cache write 2x, cache read 0.1x).
    frontier_price_input_per_mtok: float = Field(
        default=1.0, ge=0, description="USD per million uncached input tokens."
    )
    frontier_price_output_per_mtok: float = Field(
        default=5.0, ge=0, description="USD per million output tokens."
    )
    frontier_price_cache_write_per_mtok: float = Field(
        default=1.25, ge=0, description="USD per million 5-minute cache-write input tokens."
    )
    frontier_price_cache_write_1h_per_mtok: float = Field(
        default=2.0, ge=0, description="USD per million 1-hour cache-write input tokens."
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
    frontier_posts_per_call: int = Field(
        default=1,
        ge=1,
        le=16,
        description=(
            "Borderline posts per provider call (1: one call per post). Above 1, posts wait up to "
            "frontier_group_linger_seconds to share one call and its cached policy: cheaper per "
            "post, slower, and one failed call fails every post in it. See docs/frontier.md."
        ),
    )
    frontier_group_linger_seconds: float = Field(
        default=0.25,
        ge=0,
        le=2,
        description="Most seconds a borderline post waits for others to share its call.",
    )
    frontier_group_max_chars: int = Field(
        default=2_000,
        ge=1,
        description="A longer borderline post gets a call of its own (never shares one).",
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


class ReplaySettings(BaseModel):
    """The nightly replay."""

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


class ReviewSettings(BaseModel):
    """The trust-and-safety review app."""

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
