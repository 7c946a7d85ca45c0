"""Borderline posts through the Message Batches API (half price): plan, submit, poll, apply.

Borderline records (see :mod:`replay.decide`) are the durable to-do list, so nothing is lost if a
run dies: submitted batch ids are saved with the run before polling, a resumed run first collects
them, and only records with no answer and no review item are sent again. Results are matched on
``custom_id`` = the borderline record's decision id. Expired, cancelled and transient errors stay
pending for the next run; other failures (invalid output, refusal, bad request) go to review.

With a :class:`~replay.outage.ReplayGuard`, every read, write, publish and batch call is retried
through outages; reading a batch's results starts again from the first result after a failure
(results already applied are skipped, so nothing applies twice).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg

from pipeline.core.cost import TokenUsage
from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.core.replay_decisions import message_batch_decision
from pipeline.core.resilience import ProviderErrorKind
from pipeline.core.review_items import review_item
from pipeline.core.usage import decision_usage
from pipeline.log import get_logger
from replay import store
from replay.batch_budget import BatchAdmission
from replay.commit import Publish
from replay.decide import flip_severity as severity_of
from replay.decide import is_flip
from replay.message_batch_client import BatchClient, BatchResult
from replay.message_batch_plan import plan_batches, request_bytes, request_overhead_bytes
from replay.outage import ReplayGuard
from replay.report import FrontierTally
from replay.run_state import RunState, SubmittedBatch
from replay.selection import Selection
from schemas import DecisionEvent, ReviewItem, ReviewReason, Verdict

log = get_logger(__name__)

T = TypeVar("T")

#: Result types that say nothing about the post: try again in the next run.
RETRY_DETAILS = frozenset(
    {"expired", "canceled", "api_error", "overloaded_error", "rate_limit_error"}
)
#: Longest detail of a review item for a failed request.
MAX_FAILURE_DETAIL_CHARS = 500
_APPLY_GROUP = 1000


@dataclass(slots=True)
class Applied:
    """What one group of results writes and publishes."""

    decisions: list[DecisionEvent] = field(default_factory=list)
    changed: list[DecisionEvent] = field(default_factory=list)
    reviews: list[ReviewItem] = field(default_factory=list)


def apply_result(
    item: store.PendingItem,
    answer: FrontierAnswer | None,
    error: ProviderErrorKind | None,
    detail: str | None,
    cost_usd: float,
    *,
    usage: TokenUsage | None = None,
    simulated: bool = False,
    model: str,
    policy_version: str,
    flip_severity_at: float,
    decided_at: datetime,
    out: Applied,
    tally: FrontierTally,
) -> None:
    """Turn one batch result into a decision (and review items), or leave it pending (pure)."""
    tally.batch_usd += cost_usd
    top = min(max(item.scores.values(), default=0.0), 1.0)
    if answer is None:
        if error is ProviderErrorKind.SERVER_ERROR and (detail or "") in RETRY_DETAILS:
            tally.retry_next_run += 1
            return
        tally.to_review += 1
        failure = f"message_batch:{(error.value if error else 'unknown')}:{detail or ''}"
        out.reviews.append(
            review_item(
                item,
                reason=ReviewReason.FALLBACK,
                detail=failure[:MAX_FAILURE_DETAIL_CHARS],
                severity=top,
                enqueued_at=decided_at,
            )
        )
        return
    decision = message_batch_decision(
        item.post_id,
        item.ingested_at,
        answer,
        item.scores,
        model=model,
        policy_version=policy_version,
        decided_at=decided_at,
        cost_usd=cost_usd,
    ).model_copy(update={"usage": decision_usage(usage or TokenUsage()), "simulated": simulated})
    tally.decided += 1
    out.decisions.append(decision)
    new = answer.verdict.value
    if answer.verdict is Verdict.ESCALATE:
        tally.escalated += 1
        out.reviews.append(
            review_item(
                decision,
                reason=ReviewReason.ESCALATE,
                detail="message batch escalated",
                severity=top,
                enqueued_at=decided_at,
            )
        )
    if item.prev_verdict == new:
        return
    tally.changed += 1
    out.changed.append(decision)
    severity = severity_of(top, item.prev_scores)
    if is_flip(item.prev_verdict, new) and severity >= flip_severity_at:
        out.reviews.append(
            review_item(
                decision,
                reason=ReviewReason.BATCH_FLIP,
                detail=f"{item.prev_verdict}->{new}",
                severity=severity,
                enqueued_at=decided_at,
            )
        )


SaveState = Callable[[RunState], Awaitable[None]]


@dataclass(slots=True)
class MessageBatchPhase:
    """Sends a run's pending borderline records through Message Batches and applies answers."""

    pool: asyncpg.Pool
    client: BatchClient
    selection: Selection
    publish: Publish
    save_state: SaveState
    state: RunState
    max_requests: int
    max_bytes: int
    max_rationale_chars: int
    flip_severity_at: float
    timeout_s: float
    guard: ReplayGuard | None = None
    tally: FrontierTally = field(default_factory=FrontierTally)
    admission: BatchAdmission = field(default_factory=BatchAdmission)

    async def _call(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        if self.guard is None:
            return await operation()
        return await self.guard.call(operation, what=what)

    async def run(self) -> FrontierTally:
        if self.state.frontier_tally is not None:
            self.tally = replace(self.state.frontier_tally)  # a resumed run keeps counting
        self.tally.skipped_budget = 0  # counted afresh: this pass sees every record left
        for batch in self.state.open_batches():
            await self._collect(batch)
        overhead = request_overhead_bytes(self.max_rationale_chars)
        after: str | None = None
        submitted: list[SubmittedBatch] = []
        while True:
            pending = await self._call(
                functools.partial(self._pending, after), "read pending borderline records"
            )
            if not pending:
                break
            after = pending[-1].post_id
            sizes = [request_bytes(p.text, overhead) for p in pending]
            for part in plan_batches(
                sizes, max_requests=self.max_requests, max_bytes=self.max_bytes
            ):
                items = [(pending[i].decision_id, pending[i].text) for i in part]
                items, holds = await self.admission.admit(items)  # the daily batch cap
                self.tally.skipped_budget += len(part) - len(items)
                if not items:
                    continue  # left pending for the next run, like without a frontier client
                batch_id = await self.client.submit_batch(items)
                self.admission.submitted(batch_id, holds)
                submitted.append(self.state.batch_submitted(batch_id, len(items)))
                self.tally.submitted += len(items)
                self.tally.batches += 1
                await self._save()
        for batch in submitted:
            await self._collect(batch)
        return self.tally

    async def _pending(self, after: str | None) -> list[store.PendingItem]:
        async with store.connection(self.pool) as conn:
            return await store.fetch_pending(
                conn,
                self.selection,
                frontier_model=self.client.model,
                after=after,
                limit=self.max_requests,
            )

    async def _collect(self, batch: SubmittedBatch) -> None:
        batch_id = batch.batch_id
        status = await self.client.poll_batch(batch_id, timeout_s=self.timeout_s)
        log.info(
            "replay.batch_ended",
            batch_id=batch_id,
            succeeded=status.succeeded,
            errored=status.errored,
            expired=status.expired,
            canceled=status.canceled,
        )
        billed = self.tally.batch_usd
        await self._call(lambda: self._read_results(batch_id), "apply message batch results")
        self.admission.settle(batch_id, self.tally.batch_usd - billed)
        batch.done = True
        await self._save()

    async def _read_results(self, batch_id: str) -> None:
        group: list[BatchResult] = []
        async for result in self.client.batch_results(batch_id):
            group.append(result)
            if len(group) >= _APPLY_GROUP:
                await self._call(functools.partial(self._apply, group), "apply batch results")
                group = []
        if group:
            await self._call(functools.partial(self._apply, group), "apply batch results")

    async def _save(self) -> None:
        self.state.count_message_batches(self.tally)
        await self.save_state(self.state)

    async def _apply(self, results: Sequence[BatchResult]) -> None:
        model = self.client.model
        async with store.connection(self.pool) as conn:
            items = await store.fetch_by_decision_ids(
                conn, [r.custom_id for r in results], frontier_model=model
            )
        out = Applied()
        now = datetime.now(UTC)
        for result in results:
            item = items.get(result.custom_id)
            if item is None:
                continue  # answered before (a restart re-reads results) or not ours
            apply_result(
                item,
                result.answer,
                result.error,
                result.detail,
                result.cost_usd,
                usage=result.usage,
                simulated=self.client.simulated,
                model=model,
                policy_version=self.selection.policy_version,
                flip_severity_at=self.flip_severity_at,
                decided_at=now,
                out=out,
                tally=self.tally,
            )
        await self.publish(out.changed, out.reviews)
        async with store.transaction(self.pool) as conn:
            await store.write_decisions(conn, decisions=out.decisions, reviews=out.reviews)
        await self._save()
