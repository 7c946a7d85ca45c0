"""What shadow mode needs to know, sliced from Settings by the real-time composition root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    """The candidate's model folder and policy (variant and providers as the live model's), its
    inference threads, where its decisions go, and its backlog cap."""

    model_dir: Path
    policy_path: Path | None  # None: the live policy
    topic: str
    max_pending_batches: int
    threads: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ShadowConfig | None:
        """The shadow slice, or ``None`` when ``MODSTREAM_SHADOW_MODEL`` is unset."""
        if settings.shadow_model is None:
            return None
        return cls(
            model_dir=settings.shadow_model,
            policy_path=settings.shadow_policy or settings.policy_path,
            topic=settings.topic_shadow,
            max_pending_batches=settings.shadow_max_pending_batches,
            threads=settings.shadow_threads,
        )
