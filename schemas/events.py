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
import jsonschema_rs
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from schemas.fields import FreeText, Identifier, PostText, Score, ScoreName, Timestamp
from schemas.wire import WireError, loads_strict

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
    AUDIT = "audit"  # an audited real-time allow that the frontier model removed


class DeadLetterReason(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    SCHEMA_VIOLATION = "schema_violation"
    OVERSIZE = "oversize"
    PROCESSING_ERROR = "processing_error"
    UNSTORABLE = "unstorable"
    UNPUBLISHABLE = "unpublishable"


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


Scores = dict[Identifier, float]


class PostEvent(_Inbound):
    """A post on the ingest topic."""

    schema_version: Literal[1] = SCHEMA_VERSION
    post_id: Identifier
    author_id: Identifier
    text: PostText
    lang: Identifier | None = None
    created_at: Timestamp | None = None
    ingested_at: Timestamp
    source: Identifier | None = None


class DecisionUsage(_Outbound):
    """What one decision consumed, for the cost ledger (the verdicts' usage columns).

    Provider tokens (a multi-post call's tokens are split across its posts so that they add up
    to the call's usage) and the classifier's inference seconds. Kept in-process and stored with
    the verdict; it is not part of the decision's wire format (``decision.v1``).
    """

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    compute_seconds: float = Field(default=0.0, ge=0.0)

    def __add__(self, other: DecisionUsage) -> DecisionUsage:
        return DecisionUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            compute_seconds=self.compute_seconds + other.compute_seconds,
        )


class DecisionEvent(_Outbound):
    """One decision, the same shape for every stage.

    ``usage`` and ``simulated`` (the answer came from the project's API simulator, not a model)
    are excluded from serialisation: they travel with the event inside a process, to the verdict
    history, and never onto the decisions topic.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    decision_id: Identifier
    post_id: Identifier
    verdict: Verdict
    scores: Scores
    categories: list[Identifier] = Field(default_factory=list)
    stage: Stage
    model_version: Identifier
    policy_version: Identifier
    ingested_at: AwareDatetime
    decided_at: AwareDatetime
    cost_usd: float = 0.0
    reason: FreeText | None = None
    rationale: FreeText | None = None
    usage: DecisionUsage | None = Field(default=None, exclude=True)
    simulated: bool = Field(default=False, exclude=True)


class BorderlineRequest(_Outbound):
    """A post routed to the frontier stage, with its absolute deadline."""

    schema_version: Literal[1] = SCHEMA_VERSION
    post_id: Identifier
    author_id: Identifier
    text: PostText
    scores: dict[ScoreName, Score]
    model_version: Identifier
    policy_version: Identifier
    ingested_at: Timestamp
    deadline_at: Timestamp


class ReviewItem(_Outbound):
    """A post waiting for a human reviewer."""

    schema_version: Literal[1] = SCHEMA_VERSION
    item_id: Identifier
    post_id: Identifier
    reason: ReviewReason
    detail: FreeText | None = None
    severity: float = Field(ge=0.0, le=1.0)
    source_decision_id: Identifier | None = None
    scores: Scores = Field(default_factory=dict)
    enqueued_at: AwareDatetime


class DeadLetter(_Outbound):
    """An event that could not be processed, with the original bytes."""

    schema_version: Literal[1] = SCHEMA_VERSION
    reason_code: DeadLetterReason
    detail: FreeText
    source_topic: Identifier
    source_partition: int
    source_offset: int
    key_b64: Identifier | None = None
    value_b64: Identifier
    value_bytes: int | None = None
    value_sha256: Identifier | None = None
    truncated: bool = False
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


def _where(model: type[BaseModel], path: Any) -> str:
    """A location that names schema fields only: keys that came from the event are masked."""
    known = set(model.model_fields)
    parts = [str(p) if isinstance(p, int) or p in known else "<key>" for p in path]
    return "/".join(parts) or "<root>"


@cache
def _fast_validator(model: type[BaseModel]) -> jsonschema_rs.Validator:
    # Formats are annotations in 2020-12 unless asserted, as for the reference validator.
    return jsonschema_rs.validator_for(json_schema(model), validate_formats=False)


def _compiled_accepts(model: type[BaseModel], document: Any) -> bool:
    """The compiled validator's answer; ``False`` (ask the reference) when it cannot answer.

    JSON may escape a lone surrogate (``"\\ud800"``), which Python strings hold but Rust strings
    cannot: jsonschema-rs raises ``UnicodeEncodeError`` converting the document. Such a string is
    the field types' business (:mod:`schemas.fields`: an id carrying one is refused, a post's text
    gets U+FFFD), so the reference validator and the model decide it like any other document.
    """
    try:
        return bool(_fast_validator(model).is_valid(document))
    except UnicodeEncodeError:
        return False


def validate_document(model: type[BaseModel], document: Any) -> None:
    """Raise :class:`EventError` if ``document`` violates ``model``'s JSON Schema.

    A compiled validator (jsonschema-rs, ~0.3 µs a post) accepts the valid documents; the
    reference validator (jsonschema, ~30 µs) decides and explains the others. A test holds that
    whatever the compiled one accepts, the reference accepts too.

    The detail names the field and the rule it breaks, never the offending value (jsonschema's
    own messages quote it, and dead-letter details are logged).
    """
    if _compiled_accepts(model, document):
        return
    error = jsonschema.exceptions.best_match(_validator(model).iter_errors(document))
    if error is not None:
        rule = error.validator
        limit = error.validator_value
        shown = f" {limit}" if isinstance(limit, int | float | str) and len(str(limit)) < 80 else ""
        if rule == "required" and isinstance(error.instance, dict):
            # The names come from the schema, so they may be shown.
            shown = ": missing " + ", ".join(str(p) for p in limit if p not in error.instance)
        raise EventError(
            DeadLetterReason.SCHEMA_VIOLATION,
            f"{_where(model, error.absolute_path)}: violates {rule}{shown}",
        )


def decode(model: type[EventT], raw: bytes | None, *, max_bytes: int = 65_536) -> EventT:
    """Turn raw bytes from Kafka or a file into a validated event, or raise :class:`EventError`."""
    if raw is None:
        raise EventError(DeadLetterReason.SCHEMA_VIOLATION, "empty message (tombstone)")
    if len(raw) > max_bytes:
        raise EventError(DeadLetterReason.OVERSIZE, f"{len(raw)} bytes > limit {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(
            DeadLetterReason.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}: {exc.reason}"
        ) from None
    try:
        document = loads_strict(text)
    except WireError as exc:  # JSON, but beyond what the pipeline accepts (depth, ranges, keys)
        raise EventError(DeadLetterReason.SCHEMA_VIOLATION, str(exc)) from None
    except ValueError as exc:  # json.JSONDecodeError: position and expectation, no content
        raise EventError(DeadLetterReason.INVALID_JSON, str(exc)[:300]) from None
    validate_document(model, document)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise EventError(
            DeadLetterReason.SCHEMA_VIOLATION,
            f"{_where(model, first['loc'])}: {first['msg']}"[:300],
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


DEAD_LETTER_MAX_VALUE_BYTES = 16_384
DEAD_LETTER_MAX_KEY_BYTES = 1_024


def make_dead_letter(
    *,
    reason: DeadLetterReason,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    max_value_bytes: int = DEAD_LETTER_MAX_VALUE_BYTES,
) -> DeadLetter:
    """The dead-letter envelope for a message that could not be processed.

    It carries at most ``max_value_bytes`` of the original value (and 1 KiB of its key), with
    the original length and sha256, so a dead letter always fits the broker's message limit,
    however large the record that caused it.
    """
    original = value or b""
    kept_key = key[:DEAD_LETTER_MAX_KEY_BYTES] if key is not None else None
    truncated = len(original) > max_value_bytes or (key is not None and kept_key != key)
    return DeadLetter(
        reason_code=reason,
        detail=detail[:2000],
        source_topic=topic[:255],
        source_partition=partition,
        source_offset=offset,
        key_b64=base64.b64encode(kept_key).decode("ascii") if kept_key is not None else None,
        value_b64=base64.b64encode(original[:max_value_bytes]).decode("ascii"),
        value_bytes=len(original),
        value_sha256=hashlib.sha256(original).hexdigest(),
        truncated=truncated,
        failed_at=datetime.now(UTC),
    )


def isoformat(moment: datetime) -> str:
    """RFC 3339 timestamp as used on the wire."""
    return moment.isoformat()
