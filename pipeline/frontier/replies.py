"""Reading the provider's replies (no I/O): token usage (with the 1-hour cache-write share) and
the verdicts in a ``record_verdict`` or ``record_verdicts`` tool call. Used by
:mod:`pipeline.frontier.client`, the only importer of the SDK (this module reads its objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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


class Message(Protocol):
    """The parts of the SDK's ``Message`` read here (this module does not import the SDK)."""

    @property
    def stop_reason(self) -> str | None: ...
    @property
    def content(self) -> Sequence[Any]: ...
    @property
    def usage(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class ClassifiedMany:
    """One call's answers per post id (a valid answer or why not), and what the call cost."""

    answers: dict[str, FrontierAnswer | FrontierError]
    usage: TokenUsage
    cost_usd: float
    request_id: str | None


def usage_of(message: Message) -> TokenUsage:
    u = message.usage
    return TokenUsage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
        cache_read_input_tokens=u.cache_read_input_tokens or 0,
        cache_creation_1h_input_tokens=(
            u.cache_creation.ephemeral_1h_input_tokens if u.cache_creation is not None else 0
        ),
    )


def _tool_input(message: Message, tool: str) -> object:
    """The input of ``message``'s first call of ``tool``, or :class:`FrontierError`."""
    if message.stop_reason == "refusal":
        raise FrontierError(ProviderErrorKind.REFUSAL, "stop_reason refusal")
    tool_calls = [b for b in message.content if b.type == "tool_use" and b.name == tool]
    if not tool_calls:
        if any(b.type == "text" for b in message.content):
            raise FrontierError(ProviderErrorKind.REFUSAL, "answered in prose, not the tool")
        raise FrontierError(ProviderErrorKind.INVALID_OUTPUT, f"no {tool} call")
    if message.stop_reason == "max_tokens":
        raise FrontierError(ProviderErrorKind.INVALID_OUTPUT, "output truncated at max_tokens")
    return getattr(tool_calls[0], "input", None)


def answer_of(message: Message, *, max_rationale_chars: int) -> FrontierAnswer:
    """The valid verdict in ``message``, or :class:`FrontierError` (refusal / invalid output)."""
    tool_input = _tool_input(message, TOOL_NAME)
    try:
        return parse_answer(tool_input, max_rationale_chars=max_rationale_chars)
    except InvalidAnswerError as exc:
        raise FrontierError(ProviderErrorKind.INVALID_OUTPUT, str(exc)) from None


def answers_of(
    message: Message, ids: Sequence[str], *, max_rationale_chars: int
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
