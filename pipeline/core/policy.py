"""Moderation policy: per-category thresholds turning classifier scores into a verdict.

:func:`evaluate` is pure. A category at or above ``remove_at`` removes the post; otherwise one at
or above ``review_at`` makes it borderline (sent to the frontier stage); otherwise it is allowed.

The optional ``frontier_guard`` section bounds when a frontier verdict goes to human review
instead of being final (see :mod:`pipeline.core.verdict_guard`). A policy without it (v1) gets
:data:`DEFAULT_GUARD`: no margin below ``remove_at``, contradictions reviewed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.errors import ModerationError
from schemas.events import Verdict
from schemas.fields import NAME_RULE, is_name

DEFAULT_POLICY = "default.v4.json"


class PolicyError(ModerationError):
    """A policy file is missing or invalid, or scores do not match the policy's categories."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    remove_at: float
    review_at: float


@dataclass(frozen=True, slots=True)
class GuardBounds:
    """When a frontier answer is not final: see :mod:`pipeline.core.verdict_guard`.

    ``allow_review_margin``: an ``allow`` on a post with any category scoring at least
    ``remove_at - allow_review_margin`` goes to review. ``review_contradictions``: an answer whose
    categories contradict its verdict (allow with categories, remove without) goes to review.
    """

    allow_review_margin: float = 0.0
    review_contradictions: bool = True


DEFAULT_GUARD = GuardBounds()


class LanguageRoute(StrEnum):
    """Where a post in an unsupported language goes."""

    FRONTIER = "frontier"  # borderline: the frontier model reads it (the default)
    CLASSIFIER = "classifier"  # scored anyway (the gate only counts it)


@dataclass(frozen=True, slots=True)
class LanguageRules:
    """The language gate: posts confidently detected in a language outside ``supported`` (and
    long enough for the detector to be trusted) take ``route`` instead of the classifier."""

    supported: frozenset[str] = frozenset({"en"})
    route: LanguageRoute = LanguageRoute.FRONTIER
    min_confidence: float = 0.7
    min_letters: int = 12


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    thresholds: Mapping[str, Thresholds]
    frontier_guard: GuardBounds = DEFAULT_GUARD
    #: ``None``: no gate (every post is scored), as in policies before ``default.v3``.
    languages: LanguageRules | None = None


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    verdict: Verdict
    categories: list[str]
    severity: float


def evaluate(policy: Policy, scores: Mapping[str, float]) -> PolicyOutcome:
    """Verdict for one post's scores; ``categories`` are those at/over their review threshold."""
    missing = [name for name in policy.thresholds if name not in scores]
    if missing:
        raise PolicyError(f"scores lack policy categories {missing} (policy {policy.version})")
    flagged: list[str] = []
    remove = False
    severity = 0.0
    for name, limits in policy.thresholds.items():
        score = float(scores[name])
        if math.isnan(score):
            raise PolicyError(f"score for {name!r} is NaN")
        severity = max(severity, score)
        if score >= limits.review_at:
            flagged.append(name)
        if score >= limits.remove_at:
            remove = True
    verdict = Verdict.REMOVE if remove else Verdict.BORDERLINE if flagged else Verdict.ALLOW
    return PolicyOutcome(verdict=verdict, categories=flagged, severity=severity)


def _probability(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise PolicyError(f"{where} must be a number in [0, 1], got {value!r}")
    return float(value)


def parse_policy(document: Any, source: str = "<policy>") -> Policy:
    """Validate a decoded policy document."""
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: expected a JSON object")
    version = document.get("version")
    if not is_name(version):
        raise PolicyError(f"{source}: 'version' must be {NAME_RULE}")
    categories = document.get("categories")
    if not isinstance(categories, dict) or not categories:
        raise PolicyError(f"{source}: 'categories' must be a non-empty object")
    thresholds: dict[str, Thresholds] = {}
    for name, limits in categories.items():
        if not is_name(name):
            raise PolicyError(f"{source}: category names must be {NAME_RULE}, got {name!r}")
        if not isinstance(limits, dict):
            raise PolicyError(f"{source}: categories.{name} must be an object")
        remove_at = _probability(limits.get("remove_at"), f"{source}: categories.{name}.remove_at")
        review_at = _probability(limits.get("review_at"), f"{source}: categories.{name}.review_at")
        if review_at > remove_at:
            raise PolicyError(
                f"{source}: categories.{name}: review_at {review_at} > remove_at {remove_at}"
            )
        thresholds[name] = Thresholds(remove_at=remove_at, review_at=review_at)
    guard = _guard_bounds(document.get("frontier_guard"), source)
    languages = _language_rules(document.get("languages"), source)
    return Policy(version=version, thresholds=thresholds, frontier_guard=guard, languages=languages)


def _language_rules(section: Any, source: str) -> LanguageRules | None:
    """The ``languages`` section; absent means no gate."""
    if section is None:
        return None
    where = f"{source}: languages"
    if not isinstance(section, dict):
        raise PolicyError(f"{where} must be an object")
    unknown = sorted(set(section) - {"supported", "route", "min_confidence", "min_letters"})
    if unknown:
        raise PolicyError(f"{where} has unknown keys {unknown}")
    supported = section.get("supported", ["en"])
    if not isinstance(supported, list) or not all(
        isinstance(code, str) and code for code in supported
    ):
        raise PolicyError(f'{where}.supported must be a list of language codes, e.g. ["en"]')
    route = section.get("route", LanguageRoute.FRONTIER.value)
    if route not in {r.value for r in LanguageRoute}:
        raise PolicyError(f"{where}.route must be 'frontier' or 'classifier', got {route!r}")
    letters = section.get("min_letters", 12)
    if isinstance(letters, bool) or not isinstance(letters, int) or letters < 0:
        raise PolicyError(f"{where}.min_letters must be a whole number >= 0")
    return LanguageRules(
        supported=frozenset(code.lower() for code in supported),
        route=LanguageRoute(route),
        min_confidence=_probability(section.get("min_confidence", 0.7), f"{where}.min_confidence"),
        min_letters=letters,
    )


def _guard_bounds(section: Any, source: str) -> GuardBounds:
    """The ``frontier_guard`` section; absent means :data:`DEFAULT_GUARD`."""
    if section is None:
        return DEFAULT_GUARD
    where = f"{source}: frontier_guard"
    if not isinstance(section, dict):
        raise PolicyError(f"{where} must be an object")
    unknown = sorted(set(section) - {"allow_review_margin", "review_contradictions"})
    if unknown:
        raise PolicyError(f"{where} has unknown keys {unknown}")
    margin = _probability(
        section.get("allow_review_margin", DEFAULT_GUARD.allow_review_margin),
        f"{where}.allow_review_margin",
    )
    contradictions = section.get("review_contradictions", DEFAULT_GUARD.review_contradictions)
    if not isinstance(contradictions, bool):
        raise PolicyError(f"{where}.review_contradictions must be true or false")
    return GuardBounds(allow_review_margin=margin, review_contradictions=contradictions)


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file (default: the shipped ``default.v4.json``)."""
    target = path if path is not None else default_policy_path()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {target}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"policy {target} is not valid JSON: {exc}") from None
    return parse_policy(document, str(target))


def default_policy_path() -> Path:
    """Path of the policy shipped with the package."""
    return Path(str(resources.files("pipeline.policies").joinpath(DEFAULT_POLICY)))
