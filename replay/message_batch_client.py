"""What the replay needs of the Message Batches API: submit, poll, read results.

:class:`pipeline.frontier.client.FrontierClient` satisfies :class:`BatchClient`; the replay wraps
it in :class:`replay.outage.GuardedBatchClient` to ride out provider outages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from pipeline.core.cost import TokenUsage
from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.core.resilience import ProviderErrorKind


class BatchOutcome(Protocol):
    """How an ended Message Batch went (``FrontierClient``'s ``BatchStatus``)."""

    @property
    def succeeded(self) -> int: ...

    @property
    def errored(self) -> int: ...

    @property
    def expired(self) -> int: ...

    @property
    def canceled(self) -> int: ...


class BatchResult(Protocol):
    """One request's result (``FrontierClient``'s ``BatchItem``): an answer or a failure."""

    @property
    def custom_id(self) -> str: ...

    @property
    def answer(self) -> FrontierAnswer | None: ...

    @property
    def error(self) -> ProviderErrorKind | None: ...

    @property
    def usage(self) -> TokenUsage: ...

    @property
    def detail(self) -> str | None: ...

    @property
    def cost_usd(self) -> float: ...


class BatchClient(Protocol):
    """The frontier client's Message Batches path."""

    @property
    def model(self) -> str: ...

    @property
    def simulated(self) -> bool:
        """Whether the answers come from the API simulator (stored with the decisions)."""
        ...

    async def submit_batch(self, items: Sequence[tuple[str, str]]) -> str: ...

    async def poll_batch(
        self, batch_id: str, *, timeout_s: float | None = None
    ) -> BatchOutcome: ...

    def batch_results(self, batch_id: str) -> AsyncIterator[BatchResult]: ...
