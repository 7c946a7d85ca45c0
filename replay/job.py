"""One replay run: select posts, re-score them at full throughput, write changes, report.

Three asyncio tasks joined by small queues keep the classifier busy: the *reader* pages posts
out of Postgres (keyset by ``post_id``), the *scorer* runs the classifier on its own thread, and
the *writer* applies the policy, publishes changed decisions and commits each chunk's verdicts
together with its checkpoint. Killed at any point, the run resumes after its last checkpoint.
Every Postgres, broker and Message Batches call goes through :class:`~replay.outage.ReplayGuard`,
so an outage pauses the run instead of ending it (:mod:`replay.outage`, :mod:`replay.commit`).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from rich.console import Console
from rich.progress import Progress, TaskID

from classifiers.base import Classifier
from pipeline.config import Settings
from pipeline.core.policy import Policy
from pipeline.errors import ModerationError
from pipeline.frontier.config import ClientConfig
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from replay import store
from replay.batches import BatchPhase, count_estimate
from replay.commit import ChunkDone, commit_chunk, rejections_of
from replay.decide import ChunkPlan, ReplayPost, decide_chunk, prepare_text
from replay.outage import GuardedBatchClient, ReplayGuard, open_pool
from replay.progress import progress_bar, show_status
from replay.report import FrontierTally, Tally, estimate_cost, throughput
from replay.request import ReplayRequest as ReplayRequest
from replay.runlock import RunLock
from replay.selection import Selection
from replay.webhook import post_report
from schemas import DecisionEvent, ReviewItem

log = get_logger(__name__)

T = TypeVar("T")

FALLBACK_RULE_VERSION = "fallback-v1"


class ReplayError(ModerationError):
    """A replay could not run or failed; the message says what to do."""


@dataclass(slots=True)
class _Chunk:
    number: int
    posts: list[ReplayPost]
    texts: list[str] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)
    cut: int = 0


def new_run_id(now: datetime) -> str:
    return f"replay-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


class ReplayJob:
    """Runs one replay with the given collaborators (built by :func:`run`)."""

    def __init__(
        self,
        settings: Settings,
        request: ReplayRequest,
        *,
        pool: asyncpg.Pool,
        classifier: Classifier,
        policy: Policy,
        publisher: KafkaEventPublisher | None,
        frontier: Any | None = None,
        console: Console | None = None,
        guard: ReplayGuard | None = None,
    ) -> None:
        self._s = settings
        self._req = request
        self._pool = pool
        self._clf = classifier
        self._policy = policy
        self._publisher = publisher
        self._frontier = frontier
        self._console = console or Console(stderr=True)
        self._tally = Tally(max_samples=settings.replay_samples_per_transition)
        self._state: dict[str, Any] = {"state": store.RUNNING}
        self._run_id: str | None = None
        self._borderline_tokens = (0, 0)
        self._borderline_dry = 0
        self._guard = guard or ReplayGuard(
            max_outage_seconds=settings.replay_max_outage_seconds,
            backoff_cap_seconds=settings.outage_backoff_max_seconds,
        )
        self._lock = RunLock(pool)

    # --- selection and run bookkeeping ------------------------------------------------------
    def _frontier_model(self) -> str:
        return self._s.anthropic_model

    async def _resolve(self, conn: asyncpg.Connection) -> Selection:
        req = self._req
        frozen_at: datetime = await conn.fetchval("SELECT now()")
        stored_after = None
        if req.since_last_run:
            stored_after = await store.last_success_frozen_at(conn, req.scope_key())
        return Selection(
            frozen_at=frozen_at,
            since=req.since,
            until=req.until,
            stored_after=stored_after,
            stale=req.stale,
            model_version=self._clf.model_version,
            policy_version=self._policy.version,
            current_versions=(
                self._clf.model_version,
                self._frontier_model(),
                FALLBACK_RULE_VERSION,
            ),
            category=req.category,
            sample=req.sample,
            shard_index=req.shard_index,
            shard_count=req.shard_count,
            id_prefix=req.id_prefix,
        )

    def _check_versions(self, run: store.RunRow) -> Selection:
        selection = Selection.from_json(run.params["selection"])
        if (selection.model_version, selection.policy_version) != (
            self._clf.model_version,
            self._policy.version,
        ):
            raise ReplayError(
                f"run {run.run_id} was made with model {selection.model_version} / policy "
                f"{selection.policy_version}, but now model {self._clf.model_version} / policy "
                f"{self._policy.version} are loaded: start a new run instead of resuming it"
            )
        return selection

    async def _open_run(self, lock: asyncpg.Connection) -> tuple[Selection, store.Progress]:
        """Resume the requested or a matching unfinished run, or start a new one."""
        key = self._req.key(self._clf.model_version, self._policy.version)
        if self._req.resume is not None:
            run = await store.get_run(lock, self._req.resume)
            if run is None:
                raise ReplayError(f"no replay run {self._req.resume!r}; see replay_runs")
            if run.status == store.SUCCEEDED:
                raise ReplayError(f"run {run.run_id} already succeeded; nothing to resume")
            if not await store.try_lock_run(lock, run.run_id):
                raise ReplayError(f"run {run.run_id} is being processed by another process")
            return await self._adopt(lock, run)
        if not self._req.new_run:
            for run in await store.resumable_runs(lock, key):
                if await store.try_lock_run(lock, run.run_id):
                    log.info("replay.resuming", run_id=run.run_id, status=run.status)
                    return await self._adopt(lock, run)
                if run.status == store.RUNNING:
                    raise ReplayError(
                        f"run {run.run_id} with these options is in progress in another "
                        "process: wait for it, or pass --new-run to start a separate run"
                    )
        selection = await self._resolve(lock)
        run_id = new_run_id(selection.frozen_at)
        params = {
            "request": self._req.criteria(),
            "request_key": key,
            "scope_key": self._req.scope_key(),
            "selection": selection.to_json(),
        }
        await store.create_run(lock, run_id, params)
        if not await store.try_lock_run(lock, run_id):
            raise ReplayError(f"could not lock the new run {run_id}")
        self._run_id = run_id
        return selection, store.Progress(next_chunk=0, after=None)

    async def _adopt(
        self, lock: asyncpg.Connection, run: store.RunRow
    ) -> tuple[Selection, store.Progress]:
        selection = self._check_versions(run)
        self._run_id = run.run_id
        self._state = dict(run.report) if run.report else {}
        self._state["state"] = store.RUNNING
        self._state["resumes"] = int(self._state.get("resumes", 0)) + 1
        self._tally = Tally.from_json(
            self._state.get("tally", {}), max_samples=self._s.replay_samples_per_transition
        )
        await store.mark_running(lock, run.run_id)
        return selection, await store.progress(lock, run.run_id)

    # --- the pipeline ---------------------------------------------------------------------
    async def _read(
        self, selection: Selection, after: str | None, first: int, out: asyncio.Queue[_Chunk | None]
    ) -> None:
        number = first
        while True:
            posts = await self._db(
                functools.partial(
                    store.fetch_page, sel=selection, after=after, limit=self._s.replay_chunk_size
                ),
                what="read posts",
            )
            if not posts:
                break
            await out.put(_Chunk(number, posts))
            number += 1
            after = posts[-1].post_id
        await out.put(None)

    async def _score(
        self, inbox: asyncio.Queue[_Chunk | None], out: asyncio.Queue[_Chunk | None]
    ) -> None:
        limit = self._s.replay_max_text_chars
        while (chunk := await inbox.get()) is not None:
            for post in chunk.posts:
                text, was_cut = prepare_text(post.text, limit)
                chunk.cut += was_cut
                chunk.texts.append(text)
            chunk.scores = await self._clf.apredict(chunk.texts)
            await out.put(chunk)
        await out.put(None)

    async def _db(self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, what: str) -> T:
        """``work`` on a pooled connection, retried through Postgres outages."""

        async def attempt() -> T:
            async with store.connection(self._pool) as conn:
                return await work(conn)

        return await self._guard.call(attempt, what=what)

    async def _write(
        self, inbox: asyncio.Queue[_Chunk | None], progress: Progress, task: TaskID
    ) -> None:
        while (chunk := await inbox.get()) is not None:
            plan = decide_chunk(
                chunk.posts,
                chunk.scores,
                policy=self._policy,
                model_version=self._clf.model_version,
                frontier_model=self._frontier_model(),
                flip_severity_at=self._s.replay_flip_severity,
                decided_at=datetime.now(UTC),
                max_samples=self._s.replay_samples_per_transition,
            )
            plan.tally.truncated_text += chunk.cut
            if self._req.dry_run:
                self._account_dry(plan, chunk)
            else:
                await self._commit(chunk, plan)
            self._tally.merge(plan.tally)
            progress.advance(task, len(chunk.posts))

    def _account_dry(self, plan: ChunkPlan, chunk: _Chunk) -> None:
        ids = {d.post_id for d in plan.borderline}
        texts = [t for p, t in zip(chunk.posts, chunk.texts, strict=True) if p.post_id in ids]
        tin, tout = count_estimate(texts)
        self._borderline_tokens = (
            self._borderline_tokens[0] + tin,
            self._borderline_tokens[1] + tout,
        )
        self._borderline_dry += len(texts)

    async def _publish(
        self, changed: Sequence[DecisionEvent], reviews: Sequence[ReviewItem]
    ) -> None:
        """Publish before the chunk commits: a crash in between republishes (at least once)."""
        if self._publisher is None:
            return
        async with self._guard.watching("kafka"):  # a publish blocks while the broker is away
            await self._publisher.publish_decisions(changed)
            await self._publisher.publish_review(reviews)

    async def _commit(self, chunk: _Chunk, plan: ChunkPlan) -> None:
        """Verdicts, publishes, checkpoint and state of one chunk; rejected posts isolated."""
        run_id = self._run_id
        if run_id is None:
            raise ReplayError("no run to write to")
        merged = Tally.from_json(self._tally.to_json(), self._s.replay_samples_per_transition)
        merged.merge(plan.tally)
        state = {**self._state, "tally": merged.to_json()}
        done = ChunkDone(chunk.number, chunk.posts[-1].post_id, len(chunk.posts))
        attempts = 0

        async def attempt() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            await self._lock.ensure()
            return await commit_chunk(
                self._pool,
                run_id,
                done,
                plan,
                publish=self._publish,
                state=state,
                retry=attempts > 1,
            )

        self._state = await self._guard.call(attempt, what=f"write chunk {chunk.number}")

    async def _save_state(self, state: dict[str, Any]) -> None:
        run_id = self._run_id
        if run_id is None:
            raise ReplayError("no run to save")
        await self._db(lambda c: store.save_state(c, run_id, state), what="save the run state")

    async def _pass(self, selection: Selection, start: store.Progress) -> None:
        remaining = await self._db(
            lambda c: store.count_selection(c, selection, start.after), what="count posts"
        )
        depth = self._s.replay_queue_depth
        pages: asyncio.Queue[_Chunk | None] = asyncio.Queue(maxsize=depth)
        scored: asyncio.Queue[_Chunk | None] = asyncio.Queue(maxsize=depth)
        with progress_bar(self._console, enabled=self._req.progress) as progress:
            task = progress.add_task("replay", total=remaining)
            self._guard.set_status(lambda status: show_status(progress, task, status))
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read(selection, start.after, start.next_chunk, pages))
                    group.create_task(self._score(pages, scored))
                    group.create_task(self._write(scored, progress, task))
            except ExceptionGroup as group_error:  # one task failed: surface its error as is
                raise group_error.exceptions[0] from group_error
            finally:
                self._guard.set_status(None)

    async def _frontier_phase(self, selection: Selection) -> dict[str, Any]:
        multiplier = self._s.frontier_batch_price_multiplier
        if self._req.dry_run:
            cost = estimate_cost(
                *self._borderline_tokens,
                input_per_mtok=self._s.frontier_price_input_per_mtok,
                output_per_mtok=self._s.frontier_price_output_per_mtok,
                multiplier=multiplier,
            )
            tally = FrontierTally(submitted=self._borderline_dry, estimated_only=True)
            out = tally.to_json(multiplier)
            out.update(
                cost_usd=round(cost.batch_usd, 6),
                realtime_price_usd=round(cost.realtime_usd, 6),
                saved_usd=round(cost.saved_usd, 6),
            )
            return out
        if not self._s.replay_frontier_batches:
            return {"skipped": "MODSTREAM_REPLAY_FRONTIER_BATCHES is false; records stay pending"}
        if self._frontier is None:
            return {"skipped": "no API key (set MODSTREAM_ANTHROPIC_API_KEY); records stay pending"}
        phase = BatchPhase(
            pool=self._pool,
            client=GuardedBatchClient(self._frontier, self._guard),
            guard=self._guard,
            selection=selection,
            publish=self._publish,
            save_state=self._save_state,
            state=self._state,
            max_requests=self._s.replay_batch_max_requests,
            max_bytes=self._s.replay_batch_max_bytes,
            max_rationale_chars=self._s.frontier_max_rationale_chars,
            flip_severity_at=self._s.replay_flip_severity,
            timeout_s=self._s.replay_batch_timeout_seconds,
        )
        return (await phase.run()).to_json(multiplier)

    def _report(
        self,
        status: str,
        started: float,
        posts_before: int,
        frontier: dict[str, Any],
        error: str | None,
    ) -> dict[str, Any]:
        duration = time.monotonic() - started
        report: dict[str, Any] = {
            "run_id": self._run_id,
            "status": status,
            "dry_run": self._req.dry_run,
            "request": self._req.criteria(),
            "model_version": self._clf.model_version,
            "policy_version": self._policy.version,
            **self._tally.to_json(),
            "frontier": frontier,
            "duration_s": round(duration, 3),
            "posts_this_process": self._tally.posts - posts_before,
            "posts_per_s": throughput(self._tally.posts - posts_before, duration),
            "resumes": int(self._state.get("resumes", 0)),
            **rejections_of(self._state),
            "finished_at": datetime.now(UTC).isoformat(),
        }
        if error is not None:
            report["error"] = error
        return report

    def resume_hint(self) -> str:
        """How to continue this run from its last checkpoint."""
        if self._run_id is None or self._req.dry_run:
            return "run the same command again"
        return (
            f"run the same command again, or `modstream replay --resume {self._run_id}`, to "
            "continue from the last checkpoint"
        )

    async def _start(self) -> tuple[Selection, store.Progress]:
        conn = await self._lock.ensure()
        if self._req.dry_run:
            return await self._resolve(conn), store.Progress(0, None)
        opened = await self._open_run(conn)
        self._lock.run_id = self._run_id
        return opened

    async def run(self) -> dict[str, Any]:
        """Run (or resume) the replay; returns the final report. Raises :class:`ReplayError`."""
        started = time.monotonic()
        try:
            selection, start = await self._guard.call(self._start, what="open the run")
            posts_before = self._tally.posts
            log.info(
                "replay.started", run_id=self._run_id, dry_run=self._req.dry_run, after=start.after
            )
            frontier: dict[str, Any] = {}
            try:
                await self._pass(selection, start)
                frontier = await self._frontier_phase(selection)
                report = self._report(store.SUCCEEDED, started, posts_before, frontier, None)
                await self._finish(store.SUCCEEDED, report)
                return report
            except (Exception, asyncio.CancelledError) as exc:
                report = self._report(
                    "failed", started, posts_before, frontier, f"{type(exc).__name__}: {exc}"
                )
                await self._finish(store.FAILED, report)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise ReplayError(
                    f"replay failed ({type(exc).__name__}: {exc}); {self.resume_hint()}"
                ) from exc
        finally:
            await self._lock.close()

    async def _finish(self, status: str, report: dict[str, Any]) -> None:
        """Store the report; retried through outages on success, best effort on failure."""
        run_id = self._run_id
        if run_id is not None and not self._req.dry_run:
            final = {**self._state, **report, "state": status}  # keeps what a resume needs

            async def record() -> None:
                await store.finish_run(await self._lock.ensure(), run_id, status, final)

            if status == store.SUCCEEDED:
                await self._guard.call(record, what="store the report")
            else:
                try:
                    await record()
                except ModerationError as exc:
                    log.error("replay.finish_not_recorded", run_id=run_id, error=str(exc))
        log.info(
            "replay.finished",
            run_id=self._run_id,
            status=status,
            posts=report["posts"],
            changed=report["changed"],
            rejected=report["rejected"],
        )
        if self._s.replay_webhook_url:
            await post_report(
                self._s.replay_webhook_url,
                report,
                timeout_s=self._s.replay_webhook_timeout_seconds,
                retries=self._s.replay_webhook_retries,
            )


def with_request_defaults(settings: Settings, request: ReplayRequest) -> ReplayRequest:
    """Fill the shard from settings when the command line gave none."""
    if request.shard_count == 1 and settings.replay_shard_count > 1:
        return replace(
            request,
            shard_index=settings.replay_shard_index,
            shard_count=settings.replay_shard_count,
        )
    return request


async def _interruptible(job: ReplayJob) -> dict[str, Any]:
    """Run ``job``; SIGTERM (k8s stopping the pod) cancels it so the run is marked failed."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await job.run()
    except asyncio.CancelledError:
        raise ReplayError(f"interrupted by SIGTERM: {job.resume_hint()}") from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def run(
    settings: Settings, request: ReplayRequest, *, console: Console | None = None
) -> dict[str, Any]:
    """Build the collaborators from ``settings`` and run one replay; returns its report.

    Waits (at most ``replay_max_outage_seconds``) for Postgres and the broker to answer; a
    configuration error (bad credentials, missing tables) raises at once."""
    from pipeline.modelstore import load_model_and_policy

    request = with_request_defaults(settings, request)
    # Like the real-time stage: load the built model (k8s mounts it read-only); a missing model
    # is a ModelNotFoundError telling the operator to run `modstream model build`.
    classifier, policy = load_model_and_policy(settings)
    guard = ReplayGuard(
        max_outage_seconds=settings.replay_max_outage_seconds,
        backoff_cap_seconds=settings.outage_backoff_max_seconds,
    )
    try:
        pool = await open_pool(settings.postgres_dsn.get_secret_value(), guard)
    except BaseException:
        classifier.close()
        raise
    publisher: KafkaEventPublisher | None = None
    frontier: Any | None = None
    try:
        if not request.dry_run:
            publisher = KafkaEventPublisher(
                settings, client_id=f"{settings.kafka_client_id}-replay"
            )
            await guard.call(publisher.start, what="connect to kafka")
            if settings.replay_frontier_batches and settings.anthropic_api_key.get_secret_value():
                from pipeline.frontier.client import FrontierClient

                frontier = FrontierClient(ClientConfig.from_settings(settings))
        job = ReplayJob(
            settings,
            request,
            pool=pool,
            classifier=classifier,
            policy=policy,
            publisher=publisher,
            frontier=frontier,
            console=console,
            guard=guard,
        )
        return await _interruptible(job)
    finally:
        if frontier is not None:
            await frontier.close()
        if publisher is not None:
            await publisher.stop()
        await pool.close()
        classifier.close()
