"""In-memory Message Batches for the simulator, processed in the background.

A batch stays ``in_progress`` for about ``batch_processing_s`` (its requests are answered one by
one, spread over that time), then ``ended``; cancelling moves it to ``canceling`` and the
requests not yet answered end as ``canceled``. ``results_url`` is set once the batch has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devtools.sim.cache import PromptCache
from devtools.sim.faults import Fault, FaultDraw, SimConfig
from devtools.sim.messages import (
    JSON,
    SimRequestError,
    build_message,
    error_body,
    new_id,
    parse_request,
)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


@dataclass
class Batch:
    id: str
    requests: list[JSON]
    created_at: datetime
    processing_status: str = "in_progress"
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None
    results: list[JSON] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    canceled: asyncio.Event = field(default_factory=asyncio.Event)

    def counts(self) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for result in self.results:
            counts[result["result"]["type"]] += 1
        counts["processing"] = len(self.requests) - len(self.results)
        return counts

    def to_json(self, base_url: str) -> JSON:
        ended = self.processing_status == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": self.counts(),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.created_at + timedelta(hours=24)),
            "ended_at": _iso(self.ended_at),
            "cancel_initiated_at": _iso(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }

    def results_jsonl(self) -> bytes:
        return b"".join(json.dumps(r).encode() + b"\n" for r in self.results)


class BatchStore:
    """Creates, lists, cancels and processes batches."""

    def __init__(
        self,
        config: Callable[[], SimConfig],
        draw: FaultDraw,
        cache: PromptCache,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._draw = draw
        self._cache = cache
        self._clock = clock
        self._batches: dict[str, Batch] = {}

    def create(self, body: Any) -> Batch:
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            raise SimRequestError(400, "invalid_request_error", "requests: Field required")
        requests: list[JSON] = body["requests"]
        if not requests:
            raise SimRequestError(400, "invalid_request_error", "requests: at least one request")
        ids = [r.get("custom_id") if isinstance(r, dict) else None for r in requests]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise SimRequestError(
                400, "invalid_request_error", "every request needs a unique, non-empty custom_id"
            )
        for r in requests:
            params = parse_request(r.get("params"))
            if params.stream:
                raise SimRequestError(400, "invalid_request_error", "stream is not allowed here")
        batch = Batch(id=new_id("msgbatch"), requests=requests, created_at=datetime.now(UTC))
        self._batches[batch.id] = batch
        batch.task = asyncio.create_task(self._process(batch), name=f"sim-batch-{batch.id}")
        return batch

    def get(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise SimRequestError(404, "not_found_error", f"no message batch {batch_id!r}")
        return batch

    def page(self, *, limit: int, after_id: str | None, before_id: str | None) -> JSON:
        """Newest first; ``after_id``/``before_id`` are cursors as in the real API."""
        if not 1 <= limit <= 1000:
            raise SimRequestError(400, "invalid_request_error", "limit must be in 1..1000")
        ordered = sorted(self._batches.values(), key=lambda b: b.created_at, reverse=True)
        ids = [b.id for b in ordered]
        if after_id is not None:
            start = ids.index(after_id) + 1 if after_id in ids else len(ids)
            window, more = ordered[start : start + limit], len(ordered) > start + limit
        elif before_id is not None:
            end = ids.index(before_id) if before_id in ids else 0
            window, more = ordered[max(0, end - limit) : end], end - limit > 0
        else:
            window, more = ordered[:limit], len(ordered) > limit
        return {
            "data": window,
            "has_more": more,
            "first_id": window[0].id if window else None,
            "last_id": window[-1].id if window else None,
        }

    def cancel(self, batch_id: str) -> Batch:
        batch = self.get(batch_id)
        if batch.processing_status == "in_progress":
            batch.processing_status = "canceling"
            batch.cancel_initiated_at = datetime.now(UTC)
            batch.canceled.set()
        return batch

    async def close(self) -> None:
        tasks = [b.task for b in self._batches.values() if b.task is not None and not b.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def clear(self) -> None:
        for batch in self._batches.values():
            if batch.task is not None:
                batch.task.cancel()
        self._batches.clear()

    def _answer(self, request: JSON) -> JSON:
        config = self._config()
        if self._draw.chance(config.batch_error_rate):
            error = error_body("api_error", "simulated internal error for this request")
            return {
                "custom_id": request["custom_id"],
                "result": {"type": "errored", "error": error},
            }
        req = parse_request(request["params"])
        usage = self._cache.usage(req, config, now=self._clock())
        message = build_message(req, Fault.NONE, usage)
        return {
            "custom_id": request["custom_id"],
            "result": {"type": "succeeded", "message": message},
        }

    async def _process(self, batch: Batch) -> None:
        step = self._config().batch_processing_s / len(batch.requests)
        for request in batch.requests:
            if batch.processing_status == "canceling":
                batch.results.append(
                    {"custom_id": request["custom_id"], "result": {"type": "canceled"}}
                )
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.canceled.wait(), timeout=step)
            if batch.processing_status == "canceling":
                batch.results.append(
                    {"custom_id": request["custom_id"], "result": {"type": "canceled"}}
                )
                continue
            batch.results.append(self._answer(request))
        batch.processing_status = "ended"
        batch.ended_at = datetime.now(UTC)
