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
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg

from pipeline.core.frontier_answer import FrontierAnswer, tool_schema
from pipeline.core.resilience import ProviderErrorKind
from pipeline.frontier.prompt import POLICY, user_turn
from pipeline.log import get_logger
from replay import store
from replay.decide import flip_severity as severity_of
from replay.decide import is_flip
from replay.outage import ReplayGuard
from replay.report import FrontierTally
from schemas import (
    DecisionEvent,
    ReviewItem,
    ReviewReason,
    Stage,
    Verdict,
    decision_id,
    review_item_id,
)

log = get_logger(__name__)

T = TypeVar("T")

#: Result types that say nothing about the post: try again in the next run.
RETRY_DETAILS = frozenset(
    {"expired", "canceled", "api_error", "overloaded_error", "rate_limit_error"}
)
#: Rough prompt size in tokens (system policy + tool schema), for dry-run estimates.
CHARS_PER_TOKEN = 4
EXPECTED_OUTPUT_TOKENS = 120
_APPLY_GROUP = 1000


def request_overhead_bytes(max_rationale_chars: int) -> int:
    """Bytes every batch request carries besides the post: policy, tool schema, JSON framing."""
    return len(POLICY.encode()) + len(json.dumps(tool_schema(max_rationale_chars))) + 1024


def request_bytes(text: str, overhead: int) -> int:
    return overhead + len(json.dumps(user_turn(text)).encode())


def estimate_tokens(text: str) -> tuple[int, int]:
    """(input, output) tokens one verdict request is expected to use."""
    prompt = len(POLICY) + len(user_turn(text))
    return max(prompt // CHARS_PER_TOKEN, 1), EXPECTED_OUTPUT_TOKENS


def plan_batches(sizes: Sequence[int], *, max_requests: int, max_bytes: int) -> list[range]:
    """Cut requests (given their byte sizes, in order) into batches within both limits.

    A single request larger than ``max_bytes`` is a batch of its own (the API will reject it
    and the record goes to review)."""
    if max_requests < 1 or max_bytes < 1:
        raise ValueError("batch limits must be positive")
    batches: list[range] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_requests or used + size > max_bytes):
            batches.append(range(start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


class BatchClient(Protocol):
    """The frontier client's batch path (:class:`pipeline.frontier.client.FrontierClient`)."""

    @property
    def model(self) -> str: ...

    async def submit_batch(self, items: Sequence[tuple[str, str]]) -> str: ...

    async def poll_batch(self, batch_id: str, *, timeout_s: float | None = None) -> Any: ...

    def batch_results(self, batch_id: str) -> AsyncIterator[Any]: ...


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
        out.reviews.append(
            ReviewItem(
                item_id=review_item_id(item.post_id, ReviewReason.FALLBACK, item.decision_id),
                post_id=item.post_id,
                reason=ReviewReason.FALLBACK,
                detail=f"message_batch:{(error.value if error else 'unknown')}:{detail or ''}"[
                    :500
                ],
                severity=top,
                source_decision_id=item.decision_id,
                scores=item.scores,
                enqueued_at=decided_at,
            )
        )
        return
    decision = DecisionEvent(
        decision_id=decision_id(item.post_id, Stage.BATCH, model, policy_version),
        post_id=item.post_id,
        verdict=answer.verdict,
        scores=item.scores,
        categories=list(answer.categories),
        stage=Stage.BATCH,
        model_version=model,
        policy_version=policy_version,
        ingested_at=item.ingested_at,
        decided_at=decided_at,
        cost_usd=cost_usd,
        reason=f"message batch; confidence={answer.confidence:.2f}",
        rationale=answer.rationale,
    )
    tally.decided += 1
    out.decisions.append(decision)
    new = answer.verdict.value
    if answer.verdict is Verdict.ESCALATE:
        tally.escalated += 1
        out.reviews.append(
            ReviewItem(
                item_id=review_item_id(item.post_id, ReviewReason.ESCALATE, decision.decision_id),
                post_id=item.post_id,
                reason=ReviewReason.ESCALATE,
                detail="message batch escalated",
                severity=top,
                source_decision_id=decision.decision_id,
                scores=item.scores,
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
            ReviewItem(
                item_id=review_item_id(item.post_id, ReviewReason.BATCH_FLIP, decision.decision_id),
                post_id=item.post_id,
                reason=ReviewReason.BATCH_FLIP,
                detail=f"{item.prev_verdict}->{new}",
                severity=severity,
                source_decision_id=decision.decision_id,
                scores=item.scores,
                enqueued_at=decided_at,
            )
        )


Publish = Callable[[Sequence[DecisionEvent], Sequence[ReviewItem]], Awaitable[None]]
SaveState = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class BatchPhase:
    """Sends a run's pending borderline records through Message Batches and applies answers."""

    pool: asyncpg.Pool
    client: BatchClient
    selection: Any  # replay.selection.Selection
    publish: Publish
    save_state: SaveState
    state: dict[str, Any]
    max_requests: int
    max_bytes: int
    max_rationale_chars: int
    flip_severity_at: float
    timeout_s: float
    guard: ReplayGuard | None = None
    tally: FrontierTally = field(default_factory=FrontierTally)

    async def _call(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        if self.guard is None:
            return await operation()
        return await self.guard.call(operation, what=what)

    async def run(self) -> FrontierTally:
        saved = self.state.get("frontier_tally")
        if isinstance(saved, dict):
            self.tally = FrontierTally(**saved)  # a resumed run keeps counting
        batches: list[dict[str, Any]] = self.state.setdefault("frontier_batches", [])
        for entry in batches:
            if not entry.get("done"):
                await self._collect(entry)
        overhead = request_overhead_bytes(self.max_rationale_chars)
        after: str | None = None
        new_entries: list[dict[str, Any]] = []
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
                batch_id = await self.client.submit_batch(items)
                entry = {"id": batch_id, "requests": len(items), "done": False}
                batches.append(entry)
                new_entries.append(entry)
                self.tally.submitted += len(items)
                self.tally.batches += 1
                await self._save()
        for entry in new_entries:
            await self._collect(entry)
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

    async def _collect(self, entry: dict[str, Any]) -> None:
        batch_id = str(entry["id"])
        status = await self.client.poll_batch(batch_id, timeout_s=self.timeout_s)
        log.info(
            "replay.batch_ended",
            batch_id=batch_id,
            succeeded=status.succeeded,
            errored=status.errored,
            expired=status.expired,
            canceled=status.canceled,
        )
        await self._call(lambda: self._read_results(batch_id), "apply message batch results")
        entry["done"] = True
        await self._save()

    async def _read_results(self, batch_id: str) -> None:
        group: list[Any] = []
        async for result in self.client.batch_results(batch_id):
            group.append(result)
            if len(group) >= _APPLY_GROUP:
                await self._call(functools.partial(self._apply, group), "apply batch results")
                group = []
        if group:
            await self._call(functools.partial(self._apply, group), "apply batch results")

    async def _save(self) -> None:
        self.state["frontier_tally"] = asdict(self.tally)
        await self.save_state(self.state)

    async def _apply(self, results: Sequence[Any]) -> None:
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
                model=model,
                policy_version=self.selection.policy_version,
                flip_severity_at=self.flip_severity_at,
                decided_at=now,
                out=out,
                tally=self.tally,
            )
        await self.publish(out.changed, [r for r in out.reviews])
        async with store.transaction(self.pool) as conn:
            await store.write_decisions(conn, decisions=out.decisions, reviews=out.reviews)
        await self._save()


def count_estimate(texts: Mapping[str, str] | Sequence[str]) -> tuple[int, int]:
    """Expected (input, output) tokens of sending ``texts`` (dry runs)."""
    values = texts.values() if isinstance(texts, Mapping) else texts
    total_in = total_out = 0
    for text in values:
        tin, tout = estimate_tokens(text)
        total_in += tin
        total_out += tout
    return total_in, total_out
