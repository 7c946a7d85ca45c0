"""What the model registry's users need to know, sliced from Settings by the composition roots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Where registered versions live, the fallback model folder, and the stages' poll period."""

    files: Path
    default_model: Path
    poll_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConfig:
        """The registry's slice of the settings.

        The default folder sits beside the built models folder, not inside it: ``modstream model
        build --force`` replaces that folder whole.
        """
        files = settings.model_registry_dir or settings.models_path.parent / "model-registry"
        return cls(
            files=files,
            default_model=settings.models_path,
            poll_seconds=settings.model_poll_seconds,
        )
