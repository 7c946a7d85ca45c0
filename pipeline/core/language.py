"""The language gate's rule (pure): which posts the English classifier must not score.

A post is gated when the detector is confident (``min_confidence``) that it is written in a
language outside the policy's ``supported`` list, and it has at least ``min_letters`` letters
(below that, language identification is guesswork: "lol", "@USER URL", emoji). A gated post takes
the policy's route: by default it is borderline and the frontier model reads it.
"""

from __future__ import annotations

from pipeline.core.policy import LanguageRoute, LanguageRules, PolicyOutcome
from schemas import Verdict

#: The outcome of a post that goes to the frontier model without a classifier score.
GATED_OUTCOME = PolicyOutcome(verdict=Verdict.BORDERLINE, categories=[], severity=0.0)


def letters(text: str) -> int:
    return sum(1 for char in text if char.isalpha())


def gate_reason(rules: LanguageRules, text: str, language: str, confidence: float) -> str | None:
    """``language:<code>`` when ``text`` must bypass the classifier, else ``None``."""
    if rules.route is not LanguageRoute.FRONTIER:
        return None
    if language.lower() in rules.supported or confidence < rules.min_confidence:
        return None
    if letters(text) < rules.min_letters:
        return None
    return f"language:{language.lower()}"
