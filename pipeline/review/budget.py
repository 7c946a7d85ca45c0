"""The daily cap of streamed analyses, as the review app answers it.

Before an analysis starts streaming, its worst case is held against the streaming budget shared by
every review replica (:class:`~pipeline.budget.guards.StreamingBudget`). A reached cap is a 429
and a budget store that cannot be reached a 503, each a JSON error with ``Retry-After``, before
any event is sent. The hold is settled with the stream's actual usage when it ends (a stream that
is stopped or fails without reporting usage keeps its whole hold).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from pipeline.budget.errors import BudgetRefusedError
from pipeline.budget.guards import StreamingBudget
from pipeline.review.errors import BusyError, TooManyRequestsError

_BUSY_RETRY_S = 5.0


class AnalysisBudgetExhaustedError(TooManyRequestsError):
    """The reviewers' daily analysis budget (``MODSTREAM_BUDGET_STREAMING_DAILY_USD``) is spent."""


@contextlib.asynccontextmanager
async def analysis_budget(budget: StreamingBudget | None, text: str) -> AsyncIterator[None]:
    """Hold an analysis of ``text`` against the budget for the block, or refuse it."""
    if budget is None:
        yield
        return
    try:
        spend = await budget.hold(text)
    except BudgetRefusedError as exc:
        if exc.exhausted:
            raise AnalysisBudgetExhaustedError(
                "the daily budget for streamed analyses is used up; it resets in "
                f"{exc.retry_after_s / 3600:.1f} h",
                retry_after=exc.retry_after_s,
            ) from None
        raise BusyError(
            "streamed analysis is unavailable: its budget cannot be checked right now; "
            "try again shortly",
            retry_after=_BUSY_RETRY_S,
        ) from None
    with budget.streaming(spend):
        yield
