"""The provider-usage ledger: calls that decide nothing (a reviewer's streamed analysis).

Decisions carry their own usage into the verdict history (:mod:`pipeline.store.pg`); a streamed
analysis produces no decision, so its tokens are recorded here, one row per call, for
``modstream cost``. Recording never blocks or fails the caller: the row is written in the
background and a write that fails (Postgres down) is logged and counted as lost.
"""

from __future__ import annotations

import asyncio

import asyncpg

from pipeline.core.cost import CallMode, TokenUsage
from pipeline.log import get_logger

log = get_logger(__name__)

_INSERT = """
INSERT INTO provider_usage (mode, model, input_tokens, output_tokens, cache_read_tokens,
                            cache_write_tokens, cost_usd)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


class UsageLedger:
    """Records streamed-analysis usage; pass :meth:`sink` as the client's ``usage_sink``."""

    def __init__(self, pool: asyncpg.Pool, model: str) -> None:
        self._pool = pool
        self._model = model
        self._pending: set[asyncio.Task[None]] = set()
        self.lost = 0

    def sink(self, mode: CallMode, usage: TokenUsage, usd: float) -> None:
        """Usage callback: records streaming calls (the other modes are on their decisions)."""
        if mode is not CallMode.STREAMING:
            return
        task = asyncio.get_running_loop().create_task(self.record(mode, usage, usd))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def record(self, mode: CallMode, usage: TokenUsage, usd: float) -> None:
        try:
            await self._pool.execute(
                _INSERT,
                mode.value,
                self._model,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_input_tokens,
                usage.cache_creation_input_tokens,
                usd,
            )
        except Exception as exc:  # noqa: BLE001 - accounting must never fail the reviewer
            self.lost += 1
            log.warning("usage.not_recorded", mode=mode.value, error=type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the rows being written (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
