"""Reading the provider's replies (no I/O): token usage (with the 1-hour cache-write share) and
the verdicts in a ``record_verdict`` or ``record_verdicts`` tool call. Used by
:mod:`pipeline.frontier.client`, the only importer of the SDK (this module reads its objects).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.cost import TokenUsage
from pipeline.core.frontier_answer import (
    TOOL_NAME,
    FrontierAnswer,
    InvalidAnswerError,
    parse_answer,
)
from pipeline.core.multi_answer import MULTI_TOOL_NAME, parse_verdicts
from pipeline.core.resilience import ProviderErrorKind
from pipeline.frontier.errors import FrontierError
from pipeline.log import get_logger

log = get_logger(__name__)

CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What the Message Batches API accepts as a request's ``custom_id``."""


@dataclass(frozen=True, slots=True)
class ClassifiedMany:
    """One call's answers per post id (a valid answer or why not), and what the call cost."""

    answers: dict[str, FrontierAnswer | FrontierError]
    usage: TokenUsage
    cost_usd: float
    request_id: str | None


MAX_TOKENS_PER_CALL = 100_000_000
"""More tokens than any model's context holds: a count above it is not a count."""


def _count(value: object) -> int | None:
    """``value`` as a token count, or ``None`` when it is not one (the SDK does not validate)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_TOKENS_PER_CALL else None


def usage_of(message: object) -> TokenUsage:
    """The reply's token usage; a field that is not a token count is read as 0 and logged.

    The SDK builds response objects without validating them, so a reply can carry a string, a
    negative or a float where a count belongs. Such a count must not stop the stage (it would
    fail the cost arithmetic) nor enter the cost ledger; the verdict is validated on its own.
    """
    u = getattr(message, "usage", None)
    cache = getattr(u, "cache_creation", None)
    raw = {
        "input_tokens": getattr(u, "input_tokens", None),
        "output_tokens": getattr(u, "output_tokens", None),
        "cache_creation_input_tokens": getattr(u, "cache_creation_input_tokens", None),
        "cache_read_input_tokens": getattr(u, "cache_read_input_tokens", None),
        "cache_creation_1h_input_tokens": getattr(cache, "ephemeral_1h_input_tokens", None),
    }
    counts = {name: _count(value) for name, value in raw.items()}
    invalid = sorted(name for name, count in counts.items() if count is None)
    if invalid:
        log.warning("frontier.usage_invalid", fields=invalid)
    return TokenUsage(**{name: count or 0 for name, count in counts.items()})


def _tool_input(message: object, tool: str) -> object:
    """The input of ``message``'s first call of ``tool``, or :class:`FrontierError`."""
    stop_reason = getattr(message, "stop_reason", None)
    if stop_reason == "refusal":
        raise FrontierError(ProviderErrorKind.REFUSAL, "stop_reason refusal")
    content = getattr(message, "content", None)
    if not isinstance(content, list):  # the SDK does not validate replies
        raise FrontierError(ProviderErrorKind.INVALID_OUTPUT, "reply has no content list")
    kinds = [(getattr(b, "type", None), getattr(b, "name", None)) for b in content]
    tool_calls = [b for b, kind in zip(content, kinds, strict=True) if kind == ("tool_use", tool)]
    if not tool_calls:
        if any(kind == "text" for kind, _ in kinds):
            raise FrontierError(ProviderErrorKind.REFUSAL, "answered in prose, not the tool")
        raise FrontierError(ProviderErrorKind.INVALID_OUTPUT, f"no {tool} call")
    if stop_reason == "max_tokens":
        raise FrontierError(ProviderErrorKind.INVALID_OUTPUT, "output truncated at max_tokens")
    return getattr(tool_calls[0], "input", None)


def answer_of(message: object, *, max_rationale_chars: int) -> FrontierAnswer:
    """The valid verdict in ``message``, or :class:`FrontierError` (refusal / invalid output)."""
    tool_input = _tool_input(message, TOOL_NAME)
    try:
        return parse_answer(tool_input, max_rationale_chars=max_rationale_chars)
    except InvalidAnswerError as exc:
        raise FrontierError(ProviderErrorKind.INVALID_OUTPUT, str(exc)) from None


def answers_of(
    message: object, ids: Sequence[str], *, max_rationale_chars: int
) -> dict[str, FrontierAnswer | FrontierError]:
    """Per post id, the valid verdict in a ``record_verdicts`` message or why there is none.

    A refusal, prose or truncation raises :class:`FrontierError` for the whole call."""
    parsed = parse_verdicts(
        _tool_input(message, MULTI_TOOL_NAME), ids, max_rationale_chars=max_rationale_chars
    )
    if parsed.dropped_items:
        log.warning("frontier.verdicts_dropped", items=parsed.dropped_items, posts=len(ids))
    return {
        i: FrontierError(ProviderErrorKind.INVALID_OUTPUT, str(a))
        if isinstance(a, InvalidAnswerError)
        else a
        for i, a in parsed.answers.items()
    }


def batch_custom_id(line: Any) -> str | None:
    """A Message Batches result line's ``custom_id``, or ``None`` for one no request can have
    had (the API requires ``[A-Za-z0-9_-]{1,64}``): such a line is not ours and is skipped."""
    custom_id = getattr(line, "custom_id", None)
    if isinstance(custom_id, str) and CUSTOM_ID.match(custom_id):
        return custom_id
    log.warning("frontier.batch_line_skipped", why="custom_id is not one a request can have")
    return None


def batch_error_detail(result: Any) -> str:
    """Why a result that did not succeed failed: the API's error type, else the result type."""
    kind = getattr(result, "type", None)
    error_type = getattr(getattr(getattr(result, "error", None), "error", None), "type", None)
    detail = error_type if kind == "errored" and isinstance(error_type, str) else kind
    return detail[:80] if isinstance(detail, str) else "malformed result"
