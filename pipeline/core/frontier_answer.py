"""The frontier model's structured answer: its contract, its validation and its decision (pure).

The model must answer by calling the ``record_verdict`` tool. Only an input that passes
:func:`parse_answer` counts; anything else (text instead of the tool, invalid JSON, a missing
field, an unknown verdict, an out-of-range confidence) is an :class:`InvalidAnswerError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import BorderlineRequest, DecisionEvent, Stage, Verdict, decision_id

TOOL_NAME = "record_verdict"
VERDICTS: tuple[str, ...] = ("allow", "remove", "escalate")
CATEGORIES: tuple[str, ...] = (
    "harassment",
    "hate",
    "violence",
    "self_harm",
    "sexual",
    "spam",
    "scam",
    "other",
)
_FIELDS: tuple[str, ...] = ("verdict", "categories", "confidence", "rationale")


class InvalidAnswerError(ValueError):
    """The model's output is not a valid ``record_verdict`` call; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class FrontierAnswer:
    verdict: Verdict
    categories: tuple[str, ...]
    confidence: float
    rationale: str


def tool_schema(max_rationale_chars: int) -> dict[str, Any]:
    """JSON Schema of the ``record_verdict`` tool input (what :func:`parse_answer` enforces)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["verdict", "categories", "confidence", "rationale"],
        "properties": {
            "verdict": {
                "type": "string",
                "enum": list(VERDICTS),
                "description": "allow: within policy; remove: violates policy; "
                "escalate: needs a human (ambiguous, context-dependent, or high stakes).",
            },
            "categories": {
                "type": "array",
                "items": {"type": "string", "enum": list(CATEGORIES)},
                "description": "Policy categories that drove the verdict; empty when allowed.",
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "rationale": {
                "type": "string",
                "maxLength": max_rationale_chars,
                "description": "One or two sentences citing the policy section applied.",
            },
        },
    }


def parse_answer(tool_input: object, *, max_rationale_chars: int) -> FrontierAnswer:
    """Validate a ``record_verdict`` input, or raise :class:`InvalidAnswerError`."""
    if not isinstance(tool_input, dict):
        raise InvalidAnswerError(f"tool input is {type(tool_input).__name__}, not an object")
    missing = [k for k in _FIELDS if k not in tool_input]
    if missing:
        raise InvalidAnswerError(f"missing fields: {', '.join(missing)}")
    extra = sorted(str(k) for k in set(tool_input) - set(_FIELDS))
    if extra:
        raise InvalidAnswerError(f"unexpected fields: {', '.join(extra)}")
    verdict = tool_input["verdict"]
    if verdict not in VERDICTS:
        raise InvalidAnswerError(f"verdict {str(verdict)[:40]!r} not in {VERDICTS}")
    categories = tool_input["categories"]
    if not isinstance(categories, list) or not all(c in CATEGORIES for c in categories):
        raise InvalidAnswerError(f"categories must be a list drawn from {CATEGORIES}")
    confidence = tool_input["confidence"]
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not math.isfinite(confidence)
        or not 0.0 <= confidence <= 1.0
    ):
        raise InvalidAnswerError("confidence must be a number in [0, 1]")
    rationale = tool_input["rationale"]
    if not isinstance(rationale, str) or not rationale.strip():
        raise InvalidAnswerError("rationale must be a non-empty string")
    if len(rationale) > max_rationale_chars:
        raise InvalidAnswerError(f"rationale longer than {max_rationale_chars} characters")
    return FrontierAnswer(
        verdict=Verdict(verdict),
        categories=tuple(dict.fromkeys(categories)),
        confidence=float(confidence),
        rationale=rationale.strip(),
    )


def frontier_decision(
    request: BorderlineRequest,
    answer: FrontierAnswer,
    *,
    model: str,
    decided_at: datetime,
    cost_usd: float,
    guard_codes: Sequence[str] = (),
) -> DecisionEvent:
    """The decision recorded when the frontier model answered validly in time.

    ``guard_codes`` (e.g. ``guard:allow_near_remove``) mark it provisional: the verdict stands
    until a human decides the review item enqueued with it. They are appended to ``reason``.
    """
    reason = "; ".join([f"confidence={answer.confidence:.2f}", *guard_codes])
    return DecisionEvent(
        decision_id=decision_id(request.post_id, Stage.FRONTIER, model, request.policy_version),
        post_id=request.post_id,
        verdict=answer.verdict,
        scores=request.scores,
        categories=list(answer.categories),
        stage=Stage.FRONTIER,
        model_version=model,
        policy_version=request.policy_version,
        ingested_at=request.ingested_at,
        decided_at=decided_at,
        cost_usd=cost_usd,
        reason=reason,
        rationale=answer.rationale,
    )
