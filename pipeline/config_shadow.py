"""The shadow-mode section of :class:`~pipeline.config.Settings` (same ``MODSTREAM_*`` names).

A mixin of the one Settings, kept apart only to keep modules short; the real-time composition
root slices :class:`~pipeline.shadow.config.ShadowConfig` out of it. Without
``MODSTREAM_SHADOW_MODEL`` there is no shadow and the real-time stage runs exactly as before.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class ShadowSettings(BaseModel):
    """A candidate model and policy scored next to the live ones, with no effect on verdicts."""

    shadow_model: Path | None = Field(
        default=None,
        description="Built model folder of a candidate scored next to the live model in the "
        "real-time stage (shadow mode). Its decisions go to MODSTREAM_TOPIC_SHADOW and the "
        "shadow_decisions table, never to the decisions topic or the verdicts. Unset: no shadow.",
    )
    shadow_policy: Path | None = Field(
        default=None,
        description="Policy file of the shadow candidate (default: the live policy).",
    )
    shadow_threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description="ONNX Runtime intra-op threads of the shadow candidate (0: one per physical "
        "core). Its inference thread runs at the lowest CPU priority (nice 19 on Linux), so on a "
        "CPU node it uses what the live model leaves idle.",
    )
    shadow_max_pending_batches: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Shadow batches scored or written at once; a batch beyond them is dropped "
        "(counted in modstream_shadow_batches_dropped_total) so a slow shadow never holds up the "
        "live path.",
    )
    topic_shadow: str = Field(
        default="moderation.shadow", description="Shadow decisions (candidate vs live)."
    )
    partitions_shadow: int = Field(default=3, ge=1, description="Partitions of the shadow topic.")
