"""The one classifier interface the pipeline calls, and the errors it raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

#: Categories scored by the default model, in output-column order.
LABELS: tuple[str, ...] = ("toxic", "hate", "spam")


class ClassifierError(Exception):
    """Root of classifier errors. ``retriable`` says whether trying again may help."""

    retriable: ClassVar[bool] = False


class ModelNotFoundError(ClassifierError):
    """The built model folder, its manifest or a variant file is missing."""


class ModelBuildError(ClassifierError):
    """Training artifacts are unusable or the exported graph failed its parity check."""


class ProviderError(ClassifierError):
    """No requested ONNX Runtime execution provider could be initialised."""


@runtime_checkable
class Classifier(Protocol):
    """Scores texts per category. Implementations are safe to call from one thread at a time."""

    model_version: str
    labels: tuple[str, ...]
    max_tokens: int

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per-category probabilities in [0, 1], one dict per text, in input order."""
        ...

    async def apredict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Like :meth:`predict`, run on a dedicated thread so the event loop never blocks."""
        ...

    def close(self) -> None:
        """Release the inference thread and session; pending calls finish first."""
        ...
