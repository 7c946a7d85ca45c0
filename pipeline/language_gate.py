"""Runs the language gate over texts (the rule is :mod:`pipeline.core.language`).

Identification is CPU work, so it runs on a worker thread, off the event loop. Used by the
real-time stage and the replay, so both send the same posts around the classifier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from classifiers.base import Classifier
from classifiers.language import detect_languages
from pipeline.core.language import gate_reason
from pipeline.core.policy import Policy


async def held_back(policy: Policy, texts: Sequence[str]) -> tuple[list[str | None], float]:
    """Per text, the gate's reason to keep it from the classifier (or ``None``), and the
    seconds identification took (0 when the policy has no gate)."""
    rules = policy.languages
    if rules is None or not texts:
        return [None] * len(texts), 0.0
    started = time.perf_counter()
    found = await asyncio.to_thread(detect_languages, texts)
    seconds = time.perf_counter() - started
    reasons = [gate_reason(rules, t, lang, p) for t, (lang, p) in zip(texts, found, strict=True)]
    return reasons, seconds


async def score_passed(
    classifier: Classifier, texts: Sequence[str], held: Sequence[str | None]
) -> list[dict[str, float] | None]:
    """Classifier scores for the texts the gate let through; ``None`` for those it held back."""
    to_score = [text for text, why in zip(texts, held, strict=True) if not why]
    scored = iter(await classifier.apredict(to_score) if to_score else [])
    return [None if why else next(scored) for why in held]
