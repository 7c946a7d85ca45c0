"""The frontier components' slices of the settings: the client's and the decider's.

Components receive these small typed objects, never the whole :class:`~pipeline.config.Settings`;
``from_settings`` is the one place where each slice is cut (the environment variable names stay
those of Settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.core.cost import PriceTable
from pipeline.core.resilience import BreakerPolicy, RetryPolicy


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to reach the provider and what its answers may be."""

    api_key: str
    base_url: str | None
    model: str
    max_tokens: int
    analysis_max_tokens: int
    max_rationale_chars: int
    prices: PriceTable
    batch_poll_initial_seconds: float
    batch_poll_max_seconds: float

    def __repr__(self) -> str:  # never show the key
        return f"ClientConfig(model={self.model!r}, base_url={self.base_url!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientConfig:
        return cls(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            model=settings.anthropic_model,
            max_tokens=settings.anthropic_max_tokens,
            analysis_max_tokens=settings.anthropic_analysis_max_tokens,
            max_rationale_chars=settings.frontier_max_rationale_chars,
            prices=PriceTable(
                input_per_mtok=settings.frontier_price_input_per_mtok,
                output_per_mtok=settings.frontier_price_output_per_mtok,
                cache_write_per_mtok=settings.frontier_price_cache_write_per_mtok,
                cache_read_per_mtok=settings.frontier_price_cache_read_per_mtok,
                batch_multiplier=settings.frontier_batch_price_multiplier,
                cache_write_1h_per_mtok=settings.frontier_price_cache_write_1h_per_mtok,
            ),
            batch_poll_initial_seconds=settings.frontier_batch_poll_initial_seconds,
            batch_poll_max_seconds=settings.frontier_batch_poll_max_seconds,
        )


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Concurrency and request rate towards the provider (per process)."""

    concurrency: int
    rate_per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class DeciderConfig:
    """Deadlines, limits, retries, breaker and fallback of the frontier decision."""

    sla_seconds: float
    publish_margin_seconds: float
    limits: CallLimits
    retry: RetryPolicy
    breaker: BreakerPolicy
    fallback_remove_threshold: float
    policy_path: Path | None
    posts_per_call: int = 1
    group_linger_seconds: float = 0.25
    group_max_chars: int = 2_000

    @classmethod
    def from_settings(cls, settings: Settings) -> DeciderConfig:
        return cls(
            sla_seconds=settings.sla_seconds,
            publish_margin_seconds=settings.frontier_publish_margin_seconds,
            limits=CallLimits(
                concurrency=settings.frontier_concurrency,
                rate_per_second=settings.frontier_rate_limit_rps,
                burst=settings.frontier_rate_limit_burst,
            ),
            retry=RetryPolicy(
                max_attempts=settings.frontier_max_attempts,
                base_backoff_s=settings.frontier_backoff_base_seconds,
                max_backoff_s=settings.frontier_backoff_max_seconds,
                expected_call_s=settings.frontier_expected_call_seconds,
            ),
            breaker=BreakerPolicy(
                window_s=settings.frontier_breaker_window_seconds,
                min_calls=settings.frontier_breaker_min_calls,
                failure_ratio=settings.frontier_breaker_failure_ratio,
                open_s=settings.frontier_breaker_open_seconds,
            ),
            fallback_remove_threshold=settings.frontier_fallback_remove_threshold,
            policy_path=settings.policy_path,
            posts_per_call=settings.frontier_posts_per_call,
            group_linger_seconds=settings.frontier_group_linger_seconds,
            group_max_chars=settings.frontier_group_max_chars,
        )
