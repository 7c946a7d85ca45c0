"""The budget guards of each caller: the frontier stage's calls (USD per day, tokens per minute)
and account-wide request rate, the review app's streamed analyses, the replay's Message Batches.

Each call holds its worst case before it is made and settles the actual usage after:

* the worst case is :func:`input_token_bound` (UTF-8 bytes of everything sent, since a token is at
  least one byte, plus an allowance for the API's own framing and tool prompt) and ``max_tokens``
  of output, at the dearest list price of the mode;
* a call that failed with nothing billed (429, 529, 5xx, a bad request) settles at 0; one whose
  bill is unknown (a timeout, a broken connection, a stream stopped by the reviewer, a call
  cancelled by the deadline) keeps its whole hold, so the cap holds even then.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from pipeline.budget.errors import BudgetRefusedError
from pipeline.budget.ledger import BudgetLedger, Hold
from pipeline.core.budget import (
    usage_micro_usd,
    usage_tokens,
    worst_case_micro_usd,
    worst_case_tokens,
)
from pipeline.core.cost import CallMode, PriceTable, TokenUsage
from pipeline.core.fallback import FallbackCause
from pipeline.core.frontier_answer import tool_schema
from pipeline.core.resilience import ProviderErrorKind
from pipeline.frontier.prompt import POLICY, analysis_turn, user_turn

FRAMING_TOKENS = 2048
"""Allowance for what the API adds around a request (message framing, the tool-use prompt)."""

#: Failures the provider does not bill (no answer was produced).
UNBILLED = frozenset(
    {
        ProviderErrorKind.RATE_LIMITED,
        ProviderErrorKind.OVERLOADED,
        ProviderErrorKind.SERVER_ERROR,
        ProviderErrorKind.BAD_REQUEST,
        ProviderErrorKind.AUTH,
    }
)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def input_token_bound(text: str, *, max_rationale_chars: int, analysis: bool = False) -> int:
    """An upper bound of the input tokens of one verdict call (or one analysis) of ``text``."""
    if analysis:
        return _bytes(POLICY) + _bytes(analysis_turn(text)) + FRAMING_TOKENS
    schema = json.dumps(tool_schema(max_rationale_chars))
    return _bytes(POLICY) + _bytes(schema) + _bytes(user_turn(text)) + FRAMING_TOKENS


@dataclass(frozen=True, slots=True)
class CallPrice:
    """What the guard needs to price a call: list prices, the mode and ``max_tokens``."""

    prices: PriceTable
    mode: CallMode
    max_tokens: int
    max_rationale_chars: int


@dataclass(slots=True)
class Spend:
    """The holds of one call; :meth:`settle` with the usage once known."""

    price: CallPrice
    usd: tuple[BudgetLedger, Hold] | None = None
    tokens: tuple[BudgetLedger, Hold] | None = None
    settled: bool = False

    def settle(self, usage: TokenUsage) -> None:
        """Spend what ``usage`` cost and free the rest of the holds."""
        if self.settled:
            return
        self.settled = True
        if self.usd is not None:
            ledger, hold = self.usd
            ledger.settle(hold, usage_micro_usd(usage, self.price.prices, self.price.mode))
        if self.tokens is not None:
            ledger, hold = self.tokens
            ledger.settle(hold, usage_tokens(usage))

    def failed(self, kind: ProviderErrorKind, usage: TokenUsage | None = None) -> None:
        """A failed call: its reported usage, nothing if unbilled, else the whole hold."""
        if usage is not None and usage_tokens(usage) > 0:
            self.settle(usage)
        elif kind in UNBILLED:
            self.settle(TokenUsage())

    def charge_all(self) -> None:
        """The bill is unknown: keep every hold as spent."""
        if self.settled:
            return
        self.settled = True
        for held in (self.usd, self.tokens):
            if held is not None:
                ledger, hold = held
                ledger.settle(hold, hold.units)


@dataclass(slots=True)
class CallBudget:
    """USD and token ledgers of one kind of call (each ``None`` when uncapped)."""

    price: CallPrice
    usd: BudgetLedger | None = None
    tokens: BudgetLedger | None = None

    @property
    def capped(self) -> bool:
        return self.usd is not None or self.tokens is not None

    async def hold(self, text: str, *more: str) -> Spend:
        """Hold the worst case of one call of ``text``; raises :class:`BudgetRefusedError`.

        A call carrying several posts (``more``) holds the sum of each post's own bound, so the
        policy and the framing are held once per post (an over-estimate), and ``max_tokens``
        of output per post, as the client asks for."""
        spend = Spend(self.price)
        p = self.price
        texts = (text, *more)
        bound = sum(
            input_token_bound(
                t, max_rationale_chars=p.max_rationale_chars, analysis=p.mode is CallMode.STREAMING
            )
            for t in texts
        )
        max_output = p.max_tokens * len(texts)
        if self.usd is not None:
            units = worst_case_micro_usd(bound, max_output, p.prices, p.mode)
            spend.usd = (self.usd, await self.usd.reserve(units))
        if self.tokens is not None:
            try:
                units = worst_case_tokens(bound, max_output)
                spend.tokens = (self.tokens, await self.tokens.reserve(units))
            except BudgetRefusedError:
                spend.settle(TokenUsage())  # release the USD hold: no call is made
                raise
        return spend

    @contextlib.asynccontextmanager
    async def spend(self, text: str, *more: str) -> AsyncIterator[Spend]:
        """Hold for one call (of one post, or several) around the block; a block that ends
        without settling (cancelled, an unknown bill) is charged the whole hold."""
        spend = await self.hold(text, *more)
        try:
            yield spend
        except BudgetRefusedError:
            spend.settle(TokenUsage())  # refused further on (the request rate): no call made
            raise
        finally:
            spend.charge_all()

    async def close(self) -> None:
        for ledger in (self.usd, self.tokens):
            if ledger is not None:
                await ledger.close()


@dataclass(slots=True)
class RequestRate:
    """The account-wide requests-per-minute limit (a ledger of requests per minute)."""

    ledger: BudgetLedger | None = None

    async def admit(self) -> None:
        """Count one provider request, or raise :class:`BudgetRefusedError` (cause ``budget``)."""
        if self.ledger is not None:
            self.ledger.settle(await self.ledger.reserve(1), 1)

    async def close(self) -> None:
        if self.ledger is not None:
            await self.ledger.close()


@dataclass(slots=True)
class FrontierBudget:
    """The frontier decider's guard: per-call spend and the account-wide request rate."""

    calls: CallBudget | None = None
    requests: RequestRate = field(default_factory=RequestRate)

    @contextlib.asynccontextmanager
    async def spend(self, text: str, *more: str) -> AsyncIterator[Spend | None]:
        if self.calls is None or not self.calls.capped:
            yield None
            return
        async with self.calls.spend(text, *more) as spend:
            yield spend

    async def close(self) -> None:
        if self.calls is not None:
            await self.calls.close()
        await self.requests.close()


_STREAM: contextvars.ContextVar[Spend | None] = contextvars.ContextVar(
    "budget_stream", default=None
)


def settle_stream_usage(mode: CallMode, usage: TokenUsage, _usd: float) -> None:
    """A ``UsageSink`` for the review app's frontier client: settles the hold of the analysis
    streaming in this task (see :class:`StreamingBudget`)."""
    spend = _STREAM.get()
    if mode is CallMode.STREAMING and spend is not None:
        spend.settle(usage)


@dataclass(slots=True)
class StreamingBudget:
    """The review app's daily cap of streamed analyses.

    The frontier client reports a stream's usage to its usage sink as the stream ends, in the
    task that reads the stream; :func:`settle_stream_usage` settles the hold that
    :meth:`streaming` made current in that task (a context variable), so concurrent analyses
    never mix up their bills.
    """

    calls: CallBudget

    async def hold(self, text: str) -> Spend:
        """Hold an analysis of ``text``; raises :class:`BudgetRefusedError`."""
        return await self.calls.hold(text)

    @contextlib.contextmanager
    def streaming(self, spend: Spend) -> Iterator[None]:
        """Make ``spend`` the one the usage sink settles; unsettled at the end: charged whole."""
        token = _STREAM.set(spend)
        try:
            yield
        finally:
            _STREAM.reset(token)
            spend.charge_all()

    async def close(self) -> None:
        await self.calls.close()


@dataclass(slots=True)
class BatchBudget:
    """The replay's daily cap of Message Batches: requests are held before they are submitted."""

    calls: CallBudget

    async def hold_items(self, texts: Sequence[str]) -> tuple[int, list[Spend]]:
        """Hold the leading requests that fit: (how many, their holds). Stops at the first that
        does not fit (cap reached or store unavailable)."""
        holds: list[Spend] = []
        for text in texts:
            try:
                holds.append(await self.calls.hold(text))
            except BudgetRefusedError:
                break
        return len(holds), holds

    @staticmethod
    def release(holds: Sequence[Spend]) -> None:
        """The batch was not submitted: nothing spent."""
        for spend in holds:
            spend.settle(TokenUsage())

    @staticmethod
    def settle_usd(holds: Sequence[Spend], actual_micro_usd: int) -> None:
        """Settle a submitted batch's holds with its actual bill (spread over its holds)."""
        left = max(actual_micro_usd, 0)
        for i, spend in enumerate(holds):
            if spend.settled or spend.usd is None:
                continue
            ledger, hold = spend.usd
            part = left if i == len(holds) - 1 else min(left, hold.units)
            left -= part
            spend.settled = True
            ledger.settle(hold, part)

    async def close(self) -> None:
        await self.calls.close()


def unavailable(exc: BudgetRefusedError) -> bool:
    return exc.cause is FallbackCause.BUDGET_UNAVAILABLE
