"""The nightly audit: a keyed, score-stratified sample of real-time ``allow`` decisions goes to the
frontier model again through the Message Batches API (half price), and the answers are kept.

1. **select**: page (by decision id) through the window's real-time allow decisions whose post has
   not been audited, and keep the ones the :class:`~pipeline.core.audit_sampling.SamplingPlan`
   picks (stratum, inclusion probability);
2. **send**: cut them into batches within the API's limits (:mod:`replay.message_batch_plan`),
   admit each against the daily batch budget (:class:`~replay.batch_budget.BatchAdmission`,
   ``MODSTREAM_BUDGET_BATCH_DAILY_USD``), submit, poll, read the results (the replay's guarded
   client, so outages pause the run);
3. **apply**: every answer is stored in ``audit_samples``. ``remove``: a ``batch`` decision (the
   same as a Message Batch answer in the replay) is published and written — human verdicts stay
   final — and the post goes to review with reason ``audit``. ``escalate``: review, the verdict
   stands. ``allow``: the verdict stands. A failure that says nothing about the post (expired,
   overloaded) leaves it for the next run; any other failure is stored as ``error``.

Publishes happen before the rows commit (at least once; ids are deterministic, so a repeat is
harmless). A run killed after submitting a batch and before applying it sends those posts again
next time: the cost is money, never a duplicate verdict.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from rich.console import Console

from pipeline.core.audit_sampling import Pick, SamplingPlan
from pipeline.core.cost import TokenUsage
from pipeline.core.replay_decisions import message_batch_decision
from pipeline.core.resilience import ProviderErrorKind
from pipeline.core.review_items import review_item
from pipeline.core.usage import decision_usage
from pipeline.log import get_logger
from pipeline.store.audit_samples import (
    AllowedDecision,
    AuditResult,
    allowed_page,
    post_texts,
    save_results,
)
from pipeline.store.pg import write_rows
from replay.batch_budget import BatchAdmission
from replay.message_batch_client import BatchClient, BatchResult
from replay.message_batch_plan import plan_batches, request_bytes, request_overhead_bytes
from replay.message_batches import RETRY_DETAILS
from replay.outage import ReplayGuard
from replay.progress import progress_bar
from replay.store import transaction
from schemas import DecisionEvent, ReviewItem, ReviewReason, Verdict

log = get_logger(__name__)

Publish = Callable[[Sequence[DecisionEvent], Sequence[ReviewItem]], Awaitable[None]]

__all__ = [
    "AuditJob",
    "AuditLimits",
    "AuditOutputs",
    "AuditRequest",
    "AuditTally",
    "SampledPost",
    "apply_answer",
]


@dataclass(frozen=True, slots=True)
class AuditRequest:
    """The window of real-time decisions to sample, and how to run."""

    since: datetime
    until: datetime
    id_prefix: str | None = None
    dry_run: bool = False
    progress: bool = True


@dataclass(frozen=True, slots=True)
class AuditLimits:
    """Message Batches limits and the page size of the selection."""

    max_requests: int
    max_bytes: int
    max_rationale_chars: int
    timeout_s: float
    page_size: int = 5000


@dataclass(slots=True)
class AuditTally:
    """What one run did (its report)."""

    scanned: int = 0
    sampled: Counter[int] = field(default_factory=Counter)
    no_text: int = 0
    submitted: int = 0
    batches: int = 0
    skipped_budget: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    retry_next_run: int = 0
    batch_usd: float = 0.0

    def to_json(self, plan: SamplingPlan) -> dict[str, Any]:
        sampled = sum(self.sampled.values())
        return {
            "scanned_allowed": self.scanned,
            "sampled": sampled,
            "sampled_share": round(sampled / self.scanned, 6) if self.scanned else 0.0,
            "sampled_by_stratum": {str(h): self.sampled[h] for h in range(len(plan.rates))},
            "rates": list(plan.rates),
            "edges": list(plan.edges),
            "no_text": self.no_text,
            "submitted": self.submitted,
            "batches": self.batches,
            "skipped_budget": self.skipped_budget,
            "audited": sum(self.verdicts.values()),
            "verdicts": dict(sorted(self.verdicts.items())),
            "retry_next_run": self.retry_next_run,
            "batch_usd": round(self.batch_usd, 6),
        }


@dataclass(frozen=True, slots=True)
class SampledPost:
    """An allowed decision the plan picked, with the post's text."""

    decision: AllowedDecision
    pick: Pick
    text: str


@dataclass(slots=True)
class AuditOutputs:
    """What one batch's results store, publish and enqueue."""

    results: list[AuditResult] = field(default_factory=list)
    decisions: list[DecisionEvent] = field(default_factory=list)
    reviews: list[ReviewItem] = field(default_factory=list)


def apply_answer(
    sampled: SampledPost,
    result: BatchResult,
    *,
    model: str,
    simulated: bool,
    decided_at: datetime,
    out: AuditOutputs,
    tally: AuditTally,
) -> None:
    """One batch result: the audit row, and a batch decision and/or review item (pure)."""
    tally.batch_usd += result.cost_usd
    source, pick = sampled.decision, sampled.pick
    answer = result.answer
    retry = result.error is ProviderErrorKind.SERVER_ERROR and result.detail in RETRY_DETAILS
    if answer is None and retry:
        tally.retry_next_run += 1  # says nothing about the post: audited next run
        return
    verdict = answer.verdict.value if answer is not None else "error"
    tally.verdicts[verdict] += 1
    decision = None
    if answer is not None and answer.verdict is Verdict.REMOVE:
        decision = message_batch_decision(
            source.post_id,
            source.ingested_at,
            answer,
            source.scores,
            model=model,
            policy_version=source.policy_version,
            decided_at=decided_at,
            cost_usd=result.cost_usd,
        ).model_copy(update={"usage": decision_usage(result.usage), "simulated": simulated})
        out.decisions.append(decision)
        out.reviews.append(
            review_item(
                decision,
                reason=ReviewReason.AUDIT,
                detail=f"audit: allowed in real time (stratum {pick.stratum}), frontier removed",
                severity=max(answer.confidence, pick.top_score),
                enqueued_at=decided_at,
            )
        )
    elif answer is not None and answer.verdict is Verdict.ESCALATE:
        out.reviews.append(
            review_item(
                source,
                reason=ReviewReason.AUDIT,
                detail=f"audit: allowed in real time (stratum {pick.stratum}), frontier escalated",
                severity=max(answer.confidence, pick.top_score),
                enqueued_at=decided_at,
            )
        )
    usage = result.usage or TokenUsage()
    out.results.append(
        AuditResult(
            post_id=source.post_id,
            source_decision_id=source.decision_id,
            decided_at=source.decided_at,
            top_score=pick.top_score,
            stratum=pick.stratum,
            inclusion_probability=pick.probability,
            model_version=source.model_version,
            policy_version=source.policy_version,
            frontier_model=model,
            frontier_verdict=verdict,
            categories=tuple(answer.categories) if answer is not None else (),
            rationale=answer.rationale if answer is not None else (result.detail or None),
            decision_id=decision.decision_id if decision is not None else None,
            cost_usd=result.cost_usd,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            simulated=simulated,
        )
    )


class AuditJob:
    """Runs one audit with the given collaborators (built by ``modstream.roots.audit``)."""

    def __init__(
        self,
        plan: SamplingPlan,
        request: AuditRequest,
        limits: AuditLimits,
        *,
        pool: asyncpg.Pool,
        guard: ReplayGuard,
        client: BatchClient | None,
        publish: Publish,
        admission: BatchAdmission | None = None,
        console: Console | None = None,
    ) -> None:
        self._plan = plan
        self._req = request
        self._limits = limits
        self._pool = pool
        self._guard = guard
        self._client = client
        self._publish = publish
        self._admission = admission or BatchAdmission()
        self._console = console or Console(stderr=True)
        self.tally = AuditTally()

    async def run(self) -> dict[str, Any]:
        """Select, send and apply; returns the report (also logged)."""
        sampled = await self._select()
        report: dict[str, Any] = {
            "since": self._req.since.isoformat(),
            "until": self._req.until.isoformat(),
            "dry_run": self._req.dry_run,
        }
        if self._req.dry_run:
            report["skipped"] = "dry run: nothing sent or written"
        elif self._client is None:
            report["skipped"] = "no API key (set MODSTREAM_ANTHROPIC_API_KEY); nothing audited"
        elif sampled:
            await self._send(sampled, self._client)
        report.update(self.tally.to_json(self._plan))
        if self._client is not None:
            report["frontier_model"] = self._client.model
            report["simulated"] = self._client.simulated
        log.info(
            "audit.finished",
            scanned=report["scanned_allowed"],
            sampled=report["sampled"],
            audited=report["audited"],
            batch_usd=report["batch_usd"],
        )
        return report

    async def _select(self) -> list[SampledPost]:
        picked: list[tuple[AllowedDecision, Pick]] = []
        after: str | None = None
        with progress_bar(self._console, enabled=self._req.progress) as progress:
            task = progress.add_task("audit: selecting allowed decisions", total=None)
            while True:
                page = await self._guard.call(
                    functools.partial(
                        allowed_page,
                        self._pool,
                        since=self._req.since,
                        until=self._req.until,
                        after=after,
                        limit=self._limits.page_size,
                        id_prefix=self._req.id_prefix,
                    ),
                    what="read allowed decisions",
                )
                if not page:
                    break
                after = page[-1].decision_id
                self.tally.scanned += len(page)
                progress.advance(task, len(page))
                for decision in page:
                    pick = self._plan.pick(decision.post_id, decision.scores)
                    if pick is not None:
                        picked.append((decision, pick))
                        self.tally.sampled[pick.stratum] += 1
        texts = await self._guard.call(
            lambda: post_texts(self._pool, [d.post_id for d, _ in picked]), what="read posts"
        )
        out = []
        for decision, pick in picked:
            text = texts.get(decision.post_id)
            if text is None:
                self.tally.no_text += 1
                continue
            out.append(SampledPost(decision, pick, text))
        return out

    async def _send(self, sampled: list[SampledPost], client: BatchClient) -> None:
        by_id = {s.decision.decision_id: s for s in sampled}
        overhead = request_overhead_bytes(self._limits.max_rationale_chars)
        sizes = [request_bytes(s.text, overhead) for s in sampled]
        parts = plan_batches(
            sizes, max_requests=self._limits.max_requests, max_bytes=self._limits.max_bytes
        )
        with progress_bar(self._console, enabled=self._req.progress) as progress:
            task = progress.add_task("audit: message batches", total=len(sampled))
            for part in parts:
                items = [(sampled[i].decision.decision_id, sampled[i].text) for i in part]
                admitted, holds = await self._admission.admit(items)
                self.tally.skipped_budget += len(items) - len(admitted)
                if not admitted:
                    progress.advance(task, len(items))
                    continue
                batch_id = await client.submit_batch(admitted)
                self._admission.submitted(batch_id, holds)
                self.tally.submitted += len(admitted)
                self.tally.batches += 1
                progress.update(task, description=f"audit: waiting for batch {batch_id}")
                status = await client.poll_batch(batch_id, timeout_s=self._limits.timeout_s)
                log.info(
                    "audit.batch_ended",
                    batch_id=batch_id,
                    succeeded=status.succeeded,
                    errored=status.errored,
                    expired=status.expired,
                )
                billed = self.tally.batch_usd
                await self._apply(batch_id, by_id, client)
                self._admission.settle(batch_id, self.tally.batch_usd - billed)
                progress.update(task, description="audit: message batches")
                progress.advance(task, len(items))

    async def _apply(
        self, batch_id: str, by_id: dict[str, SampledPost], client: BatchClient
    ) -> None:
        out = AuditOutputs()
        now = datetime.now(UTC)

        async def read() -> list[BatchResult]:
            return [result async for result in client.batch_results(batch_id)]

        # A failure while reading starts again from the first result (nothing is applied yet).
        for result in await self._guard.call(read, what="read message batch results"):
            sampled = by_id.get(result.custom_id)
            if sampled is None:
                continue
            apply_answer(
                sampled,
                result,
                model=client.model,
                simulated=client.simulated,
                decided_at=now,
                out=out,
                tally=self.tally,
            )
        await self._publish(out.decisions, out.reviews)

        async def write() -> None:
            async with transaction(self._pool) as conn:
                await write_rows(conn, decisions=out.decisions, review_items=out.reviews)
                await save_results(conn, out.results)

        await self._guard.call(write, what="store audit results")
