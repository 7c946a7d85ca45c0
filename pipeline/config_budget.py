"""The budget section of :class:`~pipeline.config.Settings` (same ``MODSTREAM_*`` names).

A mixin of the one Settings, kept apart only to keep modules short; the composition roots slice
:class:`~pipeline.budget.config.BudgetConfig` out of it. 0 means "no cap" everywhere.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class BudgetSettings(BaseModel):
    """Spend caps shared by every replica through Postgres (see pipeline/budget)."""

    budget_frontier_daily_usd: float = Field(
        default=0.0,
        ge=0,
        description="Daily USD cap of the frontier stage's real-time calls, all replicas "
        "together; when reached, borderline posts take the fallback (reason budget). 0: no cap.",
    )
    budget_frontier_tokens_per_minute: int = Field(
        default=0,
        ge=0,
        description="Tokens (input + output) the frontier stage's calls may use per minute, all "
        "replicas together; 0: no cap.",
    )
    budget_streaming_daily_usd: float = Field(
        default=0.0,
        ge=0,
        description="Daily USD cap of reviewers' streamed analyses (all review replicas); when "
        "reached the analysis endpoint answers 429. 0: no cap.",
    )
    budget_batch_daily_usd: float = Field(
        default=0.0,
        ge=0,
        description="Daily USD cap of the replay's Message Batches; when reached the replay "
        "submits no more and leaves the records pending (skipped_budget). 0: no cap.",
    )
    budget_reset_hour_utc: int = Field(
        default=0, ge=0, le=23, description="UTC hour at which the daily caps start again."
    )
    provider_requests_per_minute: int = Field(
        default=0,
        ge=0,
        description="Account-wide provider requests per minute, shared by every frontier "
        "replica through Postgres (the per-process token bucket still smooths bursts); 0: none.",
    )
