"""One replay run: select posts, re-score them at full throughput, write changes, report.

The job sequences the phases with the collaborators it is given (the composition root,
:mod:`modstream.roots.replay`, builds them from settings):

1. open or resume the run (:class:`~replay.runs.RunBook`: runs table, checkpoints, lock);
2. the scoring pass (:class:`~replay.scoring.ScoringPass`): read → score → decide, each chunk
   committed with its checkpoint (:mod:`replay.commit`), or only counted in a dry run;
3. the Message Batches phase for borderline posts (:mod:`replay.message_batches`), or its
   estimated cost in a dry run (:mod:`replay.dry_run`);
4. the report (:mod:`replay.report`), stored with the run and sent to the webhook.

Killed at any point, the run resumes after its last checkpoint. Every Postgres, broker and
Message Batches call goes through :class:`~replay.outage.ReplayGuard`, so an outage pauses the
run instead of ending it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from rich.console import Console

from classifiers.base import Classifier
from pipeline.budget.guards import BatchBudget
from pipeline.core.fallback import FALLBACK_RULE_VERSION
from pipeline.core.policy import Policy
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from replay.batch_budget import BatchAdmission
from replay.commit import ChunkDone
from replay.config import ReplayConfig
from replay.decide import ChunkPlan
from replay.dry_run import DryRunCost
from replay.errors import ReplayError
from replay.message_batch_client import BatchClient
from replay.message_batches import MessageBatchPhase
from replay.outage import GuardedBatchClient, ReplayGuard
from replay.report import final_report
from replay.request import ReplayRequest
from replay.run_state import FAILED, SUCCEEDED, RunState
from replay.runs import RunBook
from replay.scoring import Chunk, ScoringPass
from replay.selection import Selection
from replay.webhook import post_report
from schemas import DecisionEvent, ReviewItem

log = get_logger(__name__)

__all__ = ["ReplayError", "ReplayJob", "ReplayRequest"]


class ReplayJob:
    """Runs one replay with the given collaborators (built by ``modstream.roots.replay.run``)."""

    def __init__(
        self,
        config: ReplayConfig,
        request: ReplayRequest,
        *,
        pool: asyncpg.Pool,
        classifier: Classifier,
        policy: Policy,
        publisher: KafkaEventPublisher | None,
        frontier: BatchClient | None = None,
        console: Console | None = None,
        guard: ReplayGuard | None = None,
        batch_budget: BatchBudget | None = None,
    ) -> None:
        self._s = config
        self._batch_budget = batch_budget
        self._req = request
        self._pool = pool
        self._clf = classifier
        self._policy = policy
        self._publisher = publisher
        self._frontier = frontier
        self._guard = guard or ReplayGuard(
            max_outage_seconds=config.max_outage_seconds,
            backoff_cap_seconds=config.backoff_cap_seconds,
        )
        self._scoring = ScoringPass(
            config,
            pool=pool,
            guard=self._guard,
            classifier=classifier,
            policy=policy,
            console=console or Console(stderr=True),
            show_progress=request.progress,
        )
        self._book = RunBook(
            request,
            pool=pool,
            guard=self._guard,
            model_version=classifier.model_version,
            policy_version=policy.version,
            frontier_model=config.frontier_model,
            fallback_version=FALLBACK_RULE_VERSION,
            max_samples=config.samples_per_transition,
        )
        self._state = RunState()
        self._dry_cost = DryRunCost()

    def resume_hint(self) -> str:
        """How to continue this run from its last checkpoint."""
        return self._book.resume_hint()

    async def run(self) -> dict[str, Any]:
        """Run (or resume) the replay; returns the final report. Raises :class:`ReplayError`."""
        started = time.monotonic()
        try:
            selection, start, self._state = await self._book.open()
            posts_before = self._state.tally.posts
            log.info(
                "replay.started",
                run_id=self._book.run_id,
                dry_run=self._req.dry_run,
                after=start.after,
            )
            frontier: dict[str, Any] = {}
            try:
                await self._scoring.run(selection, start, self._deliver)
                frontier = await self._message_batches(selection)
                report = self._report(SUCCEEDED, started, posts_before, frontier, None)
                await self._finish(SUCCEEDED, report)
                return report
            except (Exception, asyncio.CancelledError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                report = self._report(FAILED, started, posts_before, frontier, error)
                await self._finish(FAILED, report)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise ReplayError(f"replay failed ({error}); {self.resume_hint()}") from exc
        finally:
            await self._book.close()

    async def _deliver(self, chunk: Chunk, plan: ChunkPlan) -> None:
        """A decided chunk: committed with its checkpoint, or (dry run) only counted."""
        if self._req.dry_run:
            self._dry_cost.add(plan, chunk.posts, chunk.texts)
            self._state.count(plan.tally)
            return
        done = ChunkDone(chunk.number, chunk.posts[-1].post_id, len(chunk.posts))
        self._state = await self._book.checkpoint(
            done, plan, self._state.with_chunk(plan.tally), self._publish
        )

    async def _publish(
        self, changed: Sequence[DecisionEvent], reviews: Sequence[ReviewItem]
    ) -> None:
        """Publish before the chunk commits: a crash in between republishes (at least once)."""
        if self._publisher is None:
            return
        async with self._guard.watching("kafka"):  # a publish blocks while the broker is away
            await self._publisher.publish_decisions(changed)
            await self._publisher.publish_review(reviews)

    async def _message_batches(self, selection: Selection) -> dict[str, Any]:
        """The report's ``frontier`` section: borderline posts through Message Batches."""
        if self._req.dry_run:
            return self._dry_cost.to_json(self._s)
        if not self._s.frontier_batches:
            return {"skipped": "MODSTREAM_REPLAY_FRONTIER_BATCHES is false; records stay pending"}
        if self._frontier is None:
            return {"skipped": "no API key (set MODSTREAM_ANTHROPIC_API_KEY); records stay pending"}
        phase = MessageBatchPhase(
            pool=self._pool,
            client=GuardedBatchClient(self._frontier, self._guard),
            guard=self._guard,
            selection=selection,
            publish=self._publish,
            save_state=self._book.save,
            state=self._state,
            max_requests=self._s.batch_max_requests,
            max_bytes=self._s.batch_max_bytes,
            max_rationale_chars=self._s.max_rationale_chars,
            flip_severity_at=self._s.flip_severity,
            timeout_s=self._s.batch_timeout_seconds,
            admission=BatchAdmission(self._batch_budget),
        )
        return (await phase.run()).to_json(self._s.batch_price_multiplier)

    def _report(
        self,
        status: str,
        started: float,
        posts_before: int,
        frontier: dict[str, Any],
        error: str | None,
    ) -> dict[str, Any]:
        return final_report(
            run_id=self._book.run_id,
            status=status,
            dry_run=self._req.dry_run,
            request=self._req.criteria(),
            model_version=self._clf.model_version,
            policy_version=self._policy.version,
            tally=self._state.tally,
            frontier=frontier,
            duration_s=time.monotonic() - started,
            posts_this_process=self._state.tally.posts - posts_before,
            resumes=self._state.resumes,
            rejections=self._state.rejections_json(),
            error=error,
            finished_at=datetime.now(UTC),
        )

    async def _finish(self, status: str, report: dict[str, Any]) -> None:
        """Store the report with the run, log the end, notify the webhook."""
        await self._book.finish(status, self._state, report)
        log.info(
            "replay.finished",
            run_id=self._book.run_id,
            status=status,
            posts=report["posts"],
            changed=report["changed"],
            rejected=report["rejected"],
        )
        if self._s.webhook_url:
            await post_report(
                self._s.webhook_url,
                report,
                timeout_s=self._s.webhook_timeout_seconds,
                retries=self._s.webhook_retries,
            )
