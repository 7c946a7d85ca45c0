"""Offline language identification for the language gate (py3langid's bundled model).

The model ships inside the ``py3langid`` wheel (97 languages, naive Bayes over byte n-grams), so
nothing is fetched at run time. It is loaded once per process, on first use (about 0.3 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

#: Characters read per text: enough to tell a language, and a hostile 64 KB post costs no more
#: than a long ordinary one (the whole text would take ~30 ms; this prefix well under 1 ms).
MAX_CHARS = 1_000

Detected = tuple[str, float]
"""An ISO 639-1 code and the model's probability for it."""


@cache
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def load_language_model() -> None:
    """Load the model now (about 1 s) rather than inside the first batch."""
    _identifier()


def detect_languages(texts: Sequence[str]) -> list[Detected]:
    """The most likely language of each text, with its probability (CPU-bound: run off-loop)."""
    identifier = _identifier()
    out: list[Detected] = []
    for text in texts:
        lang, probability = identifier.classify(text[:MAX_CHARS])
        out.append((str(lang), float(probability)))
    return out
