"""Local moderation classifiers: the :class:`Classifier` protocol and its ONNX Runtime backend.

Heavy modules (``onnx``, ``train``, ``export``, ``eval``) are imported on demand, never here.
"""

from classifiers.base import (
    LABELS,
    Classifier,
    ClassifierError,
    ModelBuildError,
    ModelNotFoundError,
    ProviderError,
)

__all__ = [
    "LABELS",
    "Classifier",
    "ClassifierError",
    "ModelBuildError",
    "ModelNotFoundError",
    "ProviderError",
]
