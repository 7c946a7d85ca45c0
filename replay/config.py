"""The replay's slice of the settings, cut once by its composition root (same variable names)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """Chunking, Message Batches, flips, outages, prices and the webhook of the nightly replay."""

    chunk_size: int
    queue_depth: int
    max_text_chars: int
    flip_severity: float
    samples_per_transition: int
    frontier_batches: bool
    batch_max_requests: int
    batch_max_bytes: int
    batch_timeout_seconds: float
    max_outage_seconds: float
    backoff_cap_seconds: float
    frontier_model: str
    max_rationale_chars: int
    price_input_per_mtok: float
    price_output_per_mtok: float
    batch_price_multiplier: float
    webhook_url: str | None
    webhook_timeout_seconds: float
    webhook_retries: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayConfig:
        return cls(
            chunk_size=settings.replay_chunk_size,
            queue_depth=settings.replay_queue_depth,
            max_text_chars=settings.replay_max_text_chars,
            flip_severity=settings.replay_flip_severity,
            samples_per_transition=settings.replay_samples_per_transition,
            frontier_batches=settings.replay_frontier_batches,
            batch_max_requests=settings.replay_batch_max_requests,
            batch_max_bytes=settings.replay_batch_max_bytes,
            batch_timeout_seconds=settings.replay_batch_timeout_seconds,
            max_outage_seconds=settings.replay_max_outage_seconds,
            backoff_cap_seconds=settings.outage_backoff_max_seconds,
            frontier_model=settings.anthropic_model,
            max_rationale_chars=settings.frontier_max_rationale_chars,
            price_input_per_mtok=settings.frontier_price_input_per_mtok,
            price_output_per_mtok=settings.frontier_price_output_per_mtok,
            batch_price_multiplier=settings.frontier_batch_price_multiplier,
            webhook_url=settings.replay_webhook_url,
            webhook_timeout_seconds=settings.replay_webhook_timeout_seconds,
            webhook_retries=settings.replay_webhook_retries,
        )
