"""The frontier client: the only module that imports ``anthropic``.

One object, three calling patterns over the same prompt and model:

- real time (:meth:`FrontierClient.classify`): one Messages API call with a forced
  ``record_verdict`` tool; the caller bounds it with its deadline. The SDK never retries
  (``max_retries=0``): retries are the caller's, bounded by the budget. :meth:`classify_many`
  sends several posts in one call (forced ``record_verdicts``, one verdict per post id).
- batch (:meth:`submit_batch`, :meth:`poll_batch`, :meth:`batch_results`): the Message Batches
  API, for the nightly replay (half price, hours).
- streaming (:meth:`stream_analysis`): a long prose analysis for reviewers, as text deltas.

With ``anthropic_base_url`` set the same code talks to the simulator; unset, to the real API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anthropic
from anthropic.types import MessageParam, TextBlockParam, ToolChoiceParam, ToolParam
from anthropic.types.messages.batch_create_params import Request as BatchRequest

from pipeline.core.cost import CallMode, PriceTable, TokenUsage, cost_usd
from pipeline.core.frontier_answer import TOOL_NAME, FrontierAnswer, tool_schema
from pipeline.core.multi_answer import MULTI_TOOL_NAME, multi_tool_schema
from pipeline.core.resilience import ProviderErrorKind
from pipeline.frontier.config import ClientConfig
from pipeline.frontier.errors import FrontierError
from pipeline.frontier.prompt import PromptDesign, analysis_turn, many_user_turn, user_turn
from pipeline.frontier.provenance import ProviderWitness
from pipeline.frontier.replies import (
    CUSTOM_ID,
    ClassifiedMany,
    answer_of,
    answers_of,
    batch_custom_id,
    batch_error_detail,
    usage_of,
)
from pipeline.log import get_logger

UsageSink = Callable[[CallMode, TokenUsage, float], None]
"""Called after every call that reported usage: (mode, tokens, USD). Feeds metrics."""

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Classified:
    """A valid verdict with what it cost."""

    answer: FrontierAnswer
    usage: TokenUsage
    cost_usd: float
    request_id: str | None


@dataclass(frozen=True, slots=True)
class BatchStatus:
    batch_id: str
    processing_status: Literal["in_progress", "canceling", "ended"]
    succeeded: int
    errored: int
    canceled: int
    expired: int
    processing: int


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One result of a batch: a valid answer, or the kind of failure."""

    custom_id: str
    answer: FrontierAnswer | None
    error: ProviderErrorKind | None
    detail: str | None
    usage: TokenUsage
    cost_usd: float


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; the caller's own back-off applies


_BODY_KINDS = {
    "rate_limit_error": ProviderErrorKind.RATE_LIMITED,
    "overloaded_error": ProviderErrorKind.OVERLOADED,
    "api_error": ProviderErrorKind.SERVER_ERROR,
}


def provider_error(exc: anthropic.APIError) -> FrontierError:
    """Map an SDK exception to a :class:`FrontierError` kind.

    An error event inside a 200 stream carries its kind only in the body (``error.type``).
    """
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code < 400:
        kind = _BODY_KINDS.get(str(exc.type), ProviderErrorKind.SERVER_ERROR)
        return FrontierError(kind, f"error event in stream: {exc.type}")
    if isinstance(exc, anthropic.RateLimitError):
        return FrontierError(
            ProviderErrorKind.RATE_LIMITED,
            "429 rate limited",
            retry_after_s=_retry_after(exc.response.headers),
        )
    if isinstance(exc, anthropic.OverloadedError):
        return FrontierError(
            ProviderErrorKind.OVERLOADED,
            "529 overloaded",
            retry_after_s=_retry_after(exc.response.headers),
        )
    if isinstance(exc, anthropic.InternalServerError):
        return FrontierError(ProviderErrorKind.SERVER_ERROR, f"{exc.status_code} server error")
    if isinstance(exc, anthropic.APITimeoutError):
        return FrontierError(ProviderErrorKind.TIMEOUT, "request timed out")
    if isinstance(exc, anthropic.APIConnectionError):
        return FrontierError(ProviderErrorKind.CONNECTION, "connection failed")
    if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return FrontierError(
            ProviderErrorKind.AUTH,
            f"{exc.status_code}: check MODSTREAM_ANTHROPIC_API_KEY (and the base URL)",
        )
    if isinstance(exc, anthropic.APIStatusError):
        return FrontierError(ProviderErrorKind.BAD_REQUEST, f"{exc.status_code}: {exc.type}")
    return FrontierError(ProviderErrorKind.CONNECTION, type(exc).__name__)


class FrontierClient:
    """Calls the frontier model in real time, in batches, or streaming."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        usage_sink: UsageSink | None = None,
        default_headers: Mapping[str, str] | None = None,
        prompt: PromptDesign | None = None,
    ) -> None:
        if not config.api_key:
            raise FrontierError(
                ProviderErrorKind.AUTH,
                "no API key: set MODSTREAM_ANTHROPIC_API_KEY (any value for the simulator)",
            )
        self._config = config
        self._usage_sink = usage_sink
        self._model = config.model
        self._prices = config.prices
        self._witness = ProviderWitness()
        self._sdk = anthropic.AsyncAnthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=60.0,
            default_headers=dict(default_headers or {}),
            http_client=anthropic.DefaultAsyncHttpxClient(
                event_hooks={"response": [self._witness.seen]}
            ),
        )
        # One system block and both tools on every call: one cached prefix for all of them.
        self._system: list[TextBlockParam] = (prompt or PromptDesign()).system_blocks()  # type: ignore[assignment]
        self._tools: list[ToolParam] = [
            {
                "name": TOOL_NAME,
                "description": "Record the moderation verdict for the post.",
                "input_schema": tool_schema(config.max_rationale_chars),
            },
            {
                "name": MULTI_TOOL_NAME,
                "description": "Record one moderation verdict per post id, for every post.",
                "input_schema": multi_tool_schema(config.max_rationale_chars),
            },
        ]
        self._tool_choice: ToolChoiceParam = {"type": "tool", "name": TOOL_NAME}

    @property
    def model(self) -> str:
        return self._model

    @property
    def prices(self) -> PriceTable:
        return self._prices

    @property
    def simulated(self) -> bool:
        """Whether this client's answers came from the simulator (see ``provenance``)."""
        return self._witness.simulated

    async def close(self) -> None:
        await self._sdk.close()

    async def __aenter__(self) -> FrontierClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _account(self, mode: CallMode, usage: TokenUsage) -> float:
        usd = cost_usd(usage, self._prices, mode)
        if self._usage_sink is not None:
            self._usage_sink(mode, usage, usd)
        return usd

    def _verdict_params(self, text: str) -> dict[str, Any]:
        messages: list[MessageParam] = [{"role": "user", "content": user_turn(text)}]
        return {
            "model": self._model,
            "max_tokens": self._config.max_tokens,
            "system": self._system,
            "tools": self._tools,
            "tool_choice": self._tool_choice,
            "messages": messages,
        }

    # --- real time -----------------------------------------------------------------------
    async def classify(
        self, text: str, *, timeout_s: float, extra_headers: Mapping[str, str] | None = None
    ) -> Classified:
        """One verdict call. Raises :class:`FrontierError`; the caller owns retries/deadline."""
        try:
            message = await self._sdk.messages.create(
                **self._verdict_params(text),
                timeout=max(timeout_s, 0.001),
                extra_headers=dict(extra_headers or {}),
            )
        except anthropic.APIError as exc:
            raise provider_error(exc) from None
        usage = usage_of(message)
        usd = self._account(CallMode.REALTIME, usage)
        try:
            answer = answer_of(message, max_rationale_chars=self._config.max_rationale_chars)
        except FrontierError as exc:
            exc.usage, exc.cost_usd = usage, usd  # billed although unusable
            raise
        return Classified(answer=answer, usage=usage, cost_usd=usd, request_id=message.id)

    async def classify_many(
        self,
        posts: Sequence[tuple[str, str]],
        *,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ClassifiedMany:
        """Several ``(post_id, text)`` in one call, each answered (or not) on its own.

        Posts travel under local ids ``p1..pk``; answers come back keyed by ``post_id``.
        Raises :class:`FrontierError` when the call as a whole failed."""
        local = {f"p{n}": post_id for n, (post_id, _) in enumerate(posts, 1)}
        if len(set(local.values())) != len(posts):
            raise ValueError("classify_many needs unique post ids")
        params = self._verdict_params("")
        params["messages"] = [
            {
                "role": "user",
                "content": many_user_turn([(f"p{n}", t) for n, (_, t) in enumerate(posts, 1)]),
            }
        ]
        params["tool_choice"] = {"type": "tool", "name": MULTI_TOOL_NAME}
        params["max_tokens"] = self._config.max_tokens * len(posts)
        try:
            message = await self._sdk.messages.create(
                **params, timeout=max(timeout_s, 0.001), extra_headers=dict(extra_headers or {})
            )
        except anthropic.APIError as exc:
            raise provider_error(exc) from None
        usage = usage_of(message)
        usd = self._account(CallMode.REALTIME, usage)
        limit = self._config.max_rationale_chars
        try:
            answers = answers_of(message, list(local), max_rationale_chars=limit)
        except FrontierError as exc:
            exc.usage, exc.cost_usd = usage, usd  # billed although unusable
            raise
        return ClassifiedMany(
            answers={local[i]: a for i, a in answers.items()},
            usage=usage,
            cost_usd=usd,
            request_id=message.id,
        )

    # --- batch ---------------------------------------------------------------------------
    async def submit_batch(self, items: Sequence[tuple[str, str]]) -> str:
        """Submit ``(custom_id, post text)`` pairs as one Message Batch; returns its id.

        ``custom_id`` must match ``[A-Za-z0-9_-]{1,64}`` and be unique (map post ids to it).
        """
        if not items:
            raise ValueError("submit_batch needs at least one (custom_id, text) pair")
        seen: set[str] = set()
        for custom_id, _ in items:
            if not CUSTOM_ID.match(custom_id) or custom_id in seen:
                raise ValueError(f"custom_id {custom_id[:70]!r}: need unique [A-Za-z0-9_-]{{1,64}}")
            seen.add(custom_id)
        requests: list[BatchRequest] = [
            {"custom_id": custom_id, "params": self._verdict_params(text)}  # type: ignore[typeddict-item]
            for custom_id, text in items
        ]
        try:
            batch = await self._sdk.messages.batches.create(requests=requests)
        except anthropic.APIError as exc:
            raise provider_error(exc) from None
        log.info("frontier.batch_submitted", batch_id=batch.id, requests=len(items))
        return batch.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        try:
            batch = await self._sdk.messages.batches.retrieve(batch_id)
        except anthropic.APIError as exc:
            raise provider_error(exc) from None
        c = batch.request_counts
        return BatchStatus(
            batch_id=batch.id,
            processing_status=batch.processing_status,
            succeeded=c.succeeded,
            errored=c.errored,
            canceled=c.canceled,
            expired=c.expired,
            processing=c.processing,
        )

    async def poll_batch(self, batch_id: str, *, timeout_s: float | None = None) -> BatchStatus:
        """Poll until the batch has ended, backing off from the initial to the maximum interval.

        Transient errors (429/529/5xx/connection) are polled through; others are raised.
        ``timeout_s`` bounds the whole wait (``TimeoutError``).
        """
        delay = self._config.batch_poll_initial_seconds
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    status = await self.batch_status(batch_id)
                    if status.processing_status == "ended":
                        return status
                except FrontierError as exc:
                    if not exc.retriable:
                        raise
                    log.warning("frontier.batch_poll_error", batch_id=batch_id, kind=exc.kind)
                    delay = max(delay, exc.retry_after_s or 0.0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.batch_poll_max_seconds)

    async def cancel_batch(self, batch_id: str) -> BatchStatus:
        try:
            await self._sdk.messages.batches.cancel(batch_id)
        except anthropic.APIError as exc:
            raise provider_error(exc) from None
        return await self.batch_status(batch_id)

    async def batch_results(self, batch_id: str) -> AsyncIterator[BatchItem]:
        """Stream the results of an ended batch (any order; match on ``custom_id``)."""
        limit = self._config.max_rationale_chars
        try:
            decoder = await self._sdk.messages.batches.results(batch_id)
            async for line in decoder:
                if (custom_id := batch_custom_id(line)) is None:
                    continue  # not a line any request of ours can have produced
                result = getattr(line, "result", None)  # the SDK does not validate lines
                if getattr(result, "type", None) != "succeeded":
                    kind, detail = ProviderErrorKind.SERVER_ERROR, batch_error_detail(result)
                    yield BatchItem(custom_id, None, kind, detail, TokenUsage(), 0.0)
                    continue
                message = getattr(result, "message", None)
                usage = usage_of(message)
                usd = self._account(CallMode.BATCH, usage)
                try:
                    answer = answer_of(message, max_rationale_chars=limit)
                except FrontierError as exc:
                    yield BatchItem(custom_id, None, exc.kind, exc.detail, usage, usd)
                    continue
                yield BatchItem(custom_id, answer, None, None, usage, usd)
        except anthropic.APIError as exc:
            raise provider_error(exc) from None

    # --- streaming -----------------------------------------------------------------------
    async def stream_analysis(self, text: str) -> AsyncIterator[str]:
        """A reviewer-facing analysis of the post, yielded as text deltas as they arrive."""
        messages: list[MessageParam] = [{"role": "user", "content": analysis_turn(text)}]
        try:
            async with self._sdk.messages.stream(
                model=self._model,
                max_tokens=self._config.analysis_max_tokens,
                system=self._system,
                messages=messages,
            ) as stream:
                async for delta in stream.text_stream:
                    yield delta
                final = await stream.get_final_message()
        except anthropic.APIError as exc:
            raise provider_error(exc) from None
        self._account(CallMode.STREAMING, usage_of(final))
