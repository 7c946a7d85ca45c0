"""The deterministic fallback for borderline posts the frontier model did not decide in time.

Rule (version ``fallback-v1``), applied to the local classifier's scores carried by the request:

- ``max(scores) >= remove_threshold`` → provisional **REMOVE** (the post is hidden until a human
  looks); the categories are those scoring at least the threshold;
- otherwise → **ALLOW** (the post stays up until a human looks).

Every fallback decision is also enqueued for human review, with the reason it happened:
``deadline``, ``provider_error:<kind>`` (e.g. ``provider_error:rate_limited``), ``circuit_open``,
``invalid_output``, ``refusal``, ``budget`` (a spend, token or request cap is reached; see
:mod:`pipeline.core.budget`) or ``budget_unavailable`` (the shared budget store cannot be reached
and this process's leased slice is spent). The rule needs no I/O, so it can never miss the
deadline.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pipeline.core.resilience import ProviderErrorKind
from schemas import BorderlineRequest, DecisionEvent, Stage, Verdict, decision_id

FALLBACK_RULE_VERSION = "fallback-v1"


class FallbackCause(StrEnum):
    DEADLINE = "deadline"
    PROVIDER_ERROR = "provider_error"
    CIRCUIT_OPEN = "circuit_open"
    INVALID_OUTPUT = "invalid_output"
    REFUSAL = "refusal"
    BUDGET = "budget"
    BUDGET_UNAVAILABLE = "budget_unavailable"


def cause_of(kind: ProviderErrorKind) -> FallbackCause:
    """The fallback cause for the last provider error before giving up."""
    if kind is ProviderErrorKind.TIMEOUT:
        return FallbackCause.DEADLINE
    if kind is ProviderErrorKind.INVALID_OUTPUT:
        return FallbackCause.INVALID_OUTPUT
    if kind is ProviderErrorKind.REFUSAL:
        return FallbackCause.REFUSAL
    return FallbackCause.PROVIDER_ERROR


def fallback_reason(cause: FallbackCause, kind: ProviderErrorKind | None = None) -> str:
    """Reason code for the decision and review item, e.g. ``provider_error:overloaded``."""
    if cause is FallbackCause.PROVIDER_ERROR:
        return f"{cause.value}:{kind.value if kind is not None else 'unknown'}"
    return cause.value


def fallback_verdict(
    scores: dict[str, float], remove_threshold: float
) -> tuple[Verdict, list[str]]:
    """Apply rule ``fallback-v1`` to classifier scores: (verdict, driving categories)."""
    hot = sorted(name for name, score in scores.items() if score >= remove_threshold)
    return (Verdict.REMOVE, hot) if hot else (Verdict.ALLOW, [])


def fallback_decision(
    request: BorderlineRequest, *, reason: str, remove_threshold: float, decided_at: datetime
) -> DecisionEvent:
    """The fallback decision for ``request`` (stage ``fallback``; no provider cost)."""
    verdict, categories = fallback_verdict(request.scores, remove_threshold)
    return DecisionEvent(
        decision_id=decision_id(
            request.post_id, Stage.FALLBACK, request.model_version, request.policy_version
        ),
        post_id=request.post_id,
        verdict=verdict,
        scores=request.scores,
        categories=categories,
        stage=Stage.FALLBACK,
        model_version=request.model_version,
        policy_version=request.policy_version,
        ingested_at=request.ingested_at,
        decided_at=decided_at,
        cost_usd=0.0,
        reason=f"{FALLBACK_RULE_VERSION}:{reason}",
        rationale=(
            f"Provisional {verdict.value} by rule {FALLBACK_RULE_VERSION} (max classifier score "
            f"vs threshold {remove_threshold}); the frontier model gave no answer: {reason}."
        ),
    )
