"""POST the replay report to a webhook: bounded timeout and retries; never fails the run."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from pipeline.log import get_logger

log = get_logger(__name__)


def backoff_s(attempt: int, *, base: float = 0.5, cap: float = 10.0) -> float:
    """Wait before retry ``attempt`` (1-based): 0.5, 1, 2, 4 … seconds, at most ``cap``."""
    return float(min(base * 2 ** (attempt - 1), cap))


async def post_report(
    url: str,
    report: Mapping[str, Any],
    *,
    timeout_s: float,
    retries: int,
    base_backoff_s: float = 0.5,
) -> bool:
    """Deliver ``report`` as JSON; retry 5xx, 429 and network errors. Returns success."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    attempts = retries + 1
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(1, attempts + 1):
            try:
                async with session.post(url, json=dict(report)) as response:
                    if response.status < 300:
                        log.info("replay.webhook_sent", status=response.status, attempt=attempt)
                        return True
                    retriable = response.status >= 500 or response.status == 429
                    log.warning("replay.webhook_rejected", status=response.status, attempt=attempt)
                    if not retriable:
                        return False
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("replay.webhook_failed", error=type(exc).__name__, attempt=attempt)
            if attempt < attempts:
                await asyncio.sleep(backoff_s(attempt, base=base_backoff_s))
    log.error("replay.webhook_gave_up", attempts=attempts)
    return False
