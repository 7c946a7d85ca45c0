"""Defence in depth on a frontier verdict: when a valid answer is not final (pure).

A forced, validated ``record_verdict`` answer can still be wrong, for instance when a post talks
the model into ``allow``. Two checks send such an answer to human review instead of letting it
stand alone (bounds from the policy's ``frontier_guard`` section,
:class:`~pipeline.core.policy.GuardBounds`):

``allow_near_remove``
    the verdict is ``allow`` but some policy category scores at least
    ``remove_at - allow_review_margin`` (the classifier all but removed the post). A score that is
    not a number (NaN) trips it too: nothing proves the post is safe.
``contradiction``
    the categories contradict the verdict: ``allow`` with a category named, or ``remove`` with
    none (only when ``review_contradictions`` is on).

``escalate`` answers are reviewed anyway and are not checked. Score names the policy does not
know are ignored (they have no ``remove_at``). The guard never changes the verdict; the caller
keeps it as provisional and enqueues a review item with :func:`review_detail`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.core.policy import Policy
from schemas import Verdict

GUARD_PREFIX = "guard"


class GuardTrip(StrEnum):
    ALLOW_NEAR_REMOVE = "allow_near_remove"
    CONTRADICTION = "contradiction"

    @property
    def code(self) -> str:
        """The reason code on decisions and review items, e.g. ``guard:contradiction``."""
        return f"{GUARD_PREFIX}:{self.value}"


@dataclass(frozen=True, slots=True)
class GuardFinding:
    """One tripped check and why (category names and numbers only, never post text)."""

    trip: GuardTrip
    why: str


def near_remove(policy: Policy, scores: Mapping[str, float]) -> list[str]:
    """Policy categories whose score is at least ``remove_at - allow_review_margin`` (or NaN)."""
    margin = policy.frontier_guard.allow_review_margin
    hot: list[str] = []
    for name, limits in policy.thresholds.items():
        if name not in scores:
            continue
        score = float(scores[name])
        if math.isnan(score) or score >= limits.remove_at - margin:
            hot.append(name)
    return hot


def check_answer(
    answer: FrontierAnswer, scores: Mapping[str, float], policy: Policy
) -> list[GuardFinding]:
    """The checks ``answer`` trips for a post with these classifier ``scores`` (empty: final)."""
    if answer.verdict is Verdict.ESCALATE:
        return []
    findings: list[GuardFinding] = []
    if answer.verdict is Verdict.ALLOW:
        hot = near_remove(policy, scores)
        if hot:
            margin = policy.frontier_guard.allow_review_margin
            why = ", ".join(
                f"{name} {float(scores[name]):.3f} >= remove_at "
                f"{policy.thresholds[name].remove_at:g} - {margin:g}"
                for name in hot
            )
            findings.append(GuardFinding(GuardTrip.ALLOW_NEAR_REMOVE, why))
    if policy.frontier_guard.review_contradictions:
        if answer.verdict is Verdict.ALLOW and answer.categories:
            why = f"allow with categories {', '.join(answer.categories)}"
            findings.append(GuardFinding(GuardTrip.CONTRADICTION, why))
        elif answer.verdict is Verdict.REMOVE and not answer.categories:
            findings.append(GuardFinding(GuardTrip.CONTRADICTION, "remove with no category"))
    return findings


def reason_codes(findings: list[GuardFinding]) -> list[str]:
    """``guard:<trip>`` for each finding, in order."""
    return [f.trip.code for f in findings]


def review_detail(answer: FrontierAnswer, findings: list[GuardFinding]) -> str:
    """The review item's detail, e.g. ``guard:allow_near_remove (toxic 0.950 >= ...)``."""
    checks = "; ".join(f"{f.trip.code} ({f.why})" for f in findings)
    return (
        f"{checks}; provisional frontier {answer.verdict.value} "
        f"(confidence {answer.confidence:.2f}) kept until a human decides"
    )
