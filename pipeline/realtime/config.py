"""What the real-time stage needs to know, sliced from Settings by its composition root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.kafka.consumer import ConsumerConfig


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """Micro-batching, limits and the input topic of the real-time stage."""

    consumer: ConsumerConfig
    max_batch: int
    batch_window_ms: int
    sla_seconds: float
    max_post_bytes: int
    dead_letter_max_bytes: int
    state_dir: Path  # faust keeps (empty) folders there

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeConfig:
        """The real-time stage's slice of the settings."""
        return cls(
            consumer=ConsumerConfig(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                group_id=settings.realtime_group_id,
                client_id=f"{settings.kafka_client_id}-realtime",
                topic=settings.topic_posts,
                max_poll_records=settings.realtime_max_batch,
                isolation_level="read_committed",
            ),
            max_batch=settings.realtime_max_batch,
            batch_window_ms=settings.realtime_batch_window_ms,
            sla_seconds=settings.sla_seconds,
            max_post_bytes=settings.max_post_bytes,
            dead_letter_max_bytes=settings.dead_letter_max_value_bytes,
            state_dir=settings.state_dir,
        )
