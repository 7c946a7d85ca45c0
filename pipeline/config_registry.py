"""The model registry section of :class:`~pipeline.config.Settings` (same ``MODSTREAM_*`` names).

A mixin of the one Settings, kept apart only to keep modules short; the composition roots slice
:class:`~pipeline.registry.config.RegistryConfig` out of it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class RegistrySettings(BaseModel):
    """Where registered model versions live and how often running stages look for a promotion."""

    model_registry_dir: Path | None = Field(
        default=None,
        description="Folder of registered model versions, one read-only sub-folder per version "
        "(default: model-registry beside the built models folder; in k8s a shared read-only "
        "volume).",
    )
    model_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="How often a running stage asks the registry whether another model version "
        "was promoted; it switches between micro-batches.",
    )
