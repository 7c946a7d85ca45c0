"""Typed events, checked against the JSON Schemas in ``schemas/json`` (the source of truth).

Every inbound byte string becomes an event through :func:`decode`, the single place that checks
size, UTF-8, JSON, the JSON Schema and the Python types. Outbound events are serialised with
:func:`encode`. Inbound models ignore unknown fields; outbound models forbid them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Literal, TypeVar

import jsonschema
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION: Literal[1] = 1


class Verdict(StrEnum):
    ALLOW = "allow"
    REMOVE = "remove"
    BORDERLINE = "borderline"
    ESCALATE = "escalate"


class Stage(StrEnum):
    REALTIME = "realtime"
    FRONTIER = "frontier"
    FALLBACK = "fallback"
    BATCH = "batch"
    HUMAN = "human"


class ReviewReason(StrEnum):
    FALLBACK = "fallback"
    ESCALATE = "escalate"
    BATCH_FLIP = "batch_flip"
    APPEAL = "appeal"


class DeadLetterReason(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    SCHEMA_VIOLATION = "schema_violation"
    OVERSIZE = "oversize"
    PROCESSING_ERROR = "processing_error"


class EventError(ValueError):
    """Bytes that are not a valid event. ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class _Inbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Outbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Scores = dict[str, float]


class PostEvent(_Inbound):
    """A post on the ingest topic."""

    schema_version: Literal[1] = SCHEMA_VERSION
    post_id: str
    author_id: str
    text: str
    lang: str | None = None
    created_at: AwareDatetime | None = None
    ingested_at: AwareDatetime
    source: str | None = None

    @field_validator("text")
    @classmethod
    def _replace_lone_surrogates(cls, value: str) -> str:
        """JSON may escape lone UTF-16 surrogates (``"\\ud800"``); they become U+FFFD."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value


class DecisionEvent(_Outbound):
    """One decision, the same shape for every stage."""

    schema_version: Literal[1] = SCHEMA_VERSION
    decision_id: str
    post_id: str
    verdict: Verdict
    scores: Scores
    categories: list[str] = Field(default_factory=list)
    stage: Stage
    model_version: str
    policy_version: str
    ingested_at: AwareDatetime
    decided_at: AwareDatetime
    cost_usd: float = 0.0
    reason: str | None = None
    rationale: str | None = None


class BorderlineRequest(_Outbound):
    """A post routed to the frontier stage, with its absolute deadline."""

    schema_version: Literal[1] = SCHEMA_VERSION
    post_id: str
    author_id: str
    text: str
    scores: Scores
    model_version: str
    policy_version: str
    ingested_at: AwareDatetime
    deadline_at: AwareDatetime


class ReviewItem(_Outbound):
    """A post waiting for a human reviewer."""

    schema_version: Literal[1] = SCHEMA_VERSION
    item_id: str
    post_id: str
    reason: ReviewReason
    detail: str | None = None
    severity: float = Field(ge=0.0, le=1.0)
    source_decision_id: str | None = None
    scores: Scores = Field(default_factory=dict)
    enqueued_at: AwareDatetime


class DeadLetter(_Outbound):
    """An event that could not be processed, with the original bytes."""

    schema_version: Literal[1] = SCHEMA_VERSION
    reason_code: DeadLetterReason
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None = None
    value_b64: str
    failed_at: AwareDatetime


EventT = TypeVar("EventT", bound=BaseModel)

SCHEMA_FILES: dict[type[BaseModel], str] = {
    PostEvent: "post.v1.json",
    DecisionEvent: "decision.v1.json",
    BorderlineRequest: "borderline.v1.json",
    ReviewItem: "review_item.v1.json",
    DeadLetter: "dead_letter.v1.json",
}


@cache
def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema document (2020-12) that governs ``model``."""
    text = resources.files("schemas").joinpath("json", SCHEMA_FILES[model]).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(model: type[BaseModel]) -> jsonschema.protocols.Validator:
    schema = json_schema(model)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def validate_document(model: type[BaseModel], document: Any) -> None:
    """Raise :class:`EventError` if ``document`` violates ``model``'s JSON Schema."""
    error = jsonschema.exceptions.best_match(_validator(model).iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        raise EventError(DeadLetterReason.SCHEMA_VIOLATION, f"{where}: {error.message[:300]}")


def decode(model: type[EventT], raw: bytes | None, *, max_bytes: int = 65_536) -> EventT:
    """Turn raw bytes from Kafka or a file into a validated event, or raise :class:`EventError`."""
    if raw is None:
        raise EventError(DeadLetterReason.SCHEMA_VIOLATION, "empty message (tombstone)")
    if len(raw) > max_bytes:
        raise EventError(DeadLetterReason.OVERSIZE, f"{len(raw)} bytes > limit {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(DeadLetterReason.INVALID_UTF8, str(exc)[:300]) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise EventError(DeadLetterReason.INVALID_JSON, str(exc)[:300]) from None
    validate_document(model, document)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"]) or "<root>"
        raise EventError(
            DeadLetterReason.SCHEMA_VIOLATION, f"{where}: {first['msg']}"[:300]
        ) from None


def encode(event: BaseModel) -> bytes:
    """Serialise an event as compact UTF-8 JSON (the wire format of every topic)."""
    return event.model_dump_json(exclude_none=False).encode("utf-8")


def decision_id(post_id: str, stage: Stage, model_version: str, policy_version: str) -> str:
    """Deterministic id: the same post decided by the same stage/model/policy is one decision."""
    key = "\x1f".join((post_id, stage.value, model_version, policy_version))
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


def review_item_id(post_id: str, reason: ReviewReason, source: str) -> str:
    """Deterministic id of a review item, so a re-delivered cause never enqueues twice."""
    key = "\x1f".join((post_id, reason.value, source))
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


def make_dead_letter(
    *,
    reason: DeadLetterReason,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
) -> DeadLetter:
    """The dead-letter envelope for a message that could not be processed."""
    return DeadLetter(
        reason_code=reason,
        detail=detail[:2000],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key_b64=base64.b64encode(key).decode("ascii") if key is not None else None,
        value_b64=base64.b64encode(value or b"").decode("ascii"),
        failed_at=datetime.now(UTC),
    )


def isoformat(moment: datetime) -> str:
    """RFC 3339 timestamp as used on the wire."""
    return moment.isoformat()
