"""What the real-time stage needs to know, sliced from Settings by its composition root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
