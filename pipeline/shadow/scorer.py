"""The shadow scorer: scores each live micro-batch with the candidate, after the live decisions
were handed to delivery, and records what the candidate would have decided.

It never touches the live path: :meth:`ShadowScorer.submit` only snapshots the batch's decisions
and starts a task; the candidate scores on its own inference thread (off the event loop) at the
lowest CPU priority, so it takes only CPU time the live model leaves idle; its
rows go to their own table and topic through their own Postgres pool and Kafka producer. At most
``max_pending_batches`` shadow batches are in flight: a further one is dropped, so a candidate
slower than the live model falls behind by dropping, never by holding up the stage. Any failure
(a bad model, a write error, an outage) is logged, counted in
``modstream_shadow_batches_dropped_total`` and drops that shadow batch.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Protocol

from classifiers.base import Classifier
from pipeline.core.policy import Policy
from pipeline.core.shadow import held_back_live, shadow_decisions
from pipeline.language_gate import held_back, score_passed
from pipeline.log import get_logger
from pipeline.ports import StoredPost
from pipeline.shadow import metrics
from schemas import DecisionEvent, encode
from schemas.shadow import ShadowDecision

log = get_logger(__name__)

_DRAIN_SECONDS = 10.0
#: The candidate's inference thread's niceness: the lowest CPU priority, so the kernel runs the
#: live model's threads first and the candidate takes only idle CPU time.
BACKGROUND_NICENESS = 19


def lower_thread_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux only: there a thread id names one
    thread; elsewhere ``setpriority`` would renice the whole process, so nothing is done)."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except OSError as exc:  # a sandbox may forbid it: the shadow still works, at normal priority
        log.warning("shadow.priority_unchanged", error=str(exc))


class BackgroundClassifier:
    """A classifier whose async scoring runs on one low-priority thread of its own (see
    :func:`lower_thread_priority`). With one intra-op thread, ONNX Runtime scores on that
    thread, so the candidate never takes CPU time the live model wants."""

    def __init__(self, classifier: Classifier) -> None:
        self._classifier = classifier
        self.model_version = classifier.model_version
        self.labels = classifier.labels
        self.max_tokens = classifier.max_tokens
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="shadow-inference",
            initializer=lower_thread_priority,
        )

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return self._classifier.predict(texts)

    async def apredict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._classifier.predict, list(texts))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._classifier.close()


class ShadowWriter(Protocol):
    async def write(self, rows: Sequence[ShadowDecision]) -> None: ...

    async def close(self) -> None: ...


class RecordPublisher(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None: ...


class ShadowScorer:
    """Scores live batches with a candidate model and policy; see the module doc."""

    def __init__(
        self,
        *,
        classifier: Classifier,
        policy: Policy,
        live_policy: Policy,
        store: ShadowWriter,
        publisher: RecordPublisher,
        topic: str,
        max_pending_batches: int,
    ) -> None:
        self._classifier = BackgroundClassifier(classifier)
        self._policy = policy
        self._same_gate = policy.languages == live_policy.languages
        self._store = store
        self._publisher = publisher
        self._topic = topic
        self._max_pending = max_pending_batches
        self._pending: set[asyncio.Task[None]] = set()
        self._publisher_started = False

    @property
    def model_version(self) -> str:
        return self._classifier.model_version

    @property
    def policy_version(self) -> str:
        return self._policy.version

    def submit(self, posts: Sequence[StoredPost], decisions: Sequence[DecisionEvent]) -> None:
        """Score this batch's posts in the background; returns at once and never raises.

        Call it after the live outputs were handed to delivery: the lists are copied here, so
        what delivery later does to the batch does not change what the shadow compares.
        """
        if not decisions:
            return
        if len(self._pending) >= self._max_pending:
            metrics.DROPPED.labels(reason="backlog").inc()
            return
        texts = {post.post_id: post.text for post, *_ in posts}
        task = asyncio.create_task(self._run(list(decisions), texts))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run(self, decisions: list[DecisionEvent], texts: dict[str, str]) -> None:
        step = "score"
        try:
            rows = await self._score(decisions, texts)
            step = "store"
            await self._store.write(rows)
            step = "publish"
            await self._publish(rows)
        except asyncio.CancelledError:
            metrics.DROPPED.labels(reason="stopped").inc()
            raise
        except Exception as exc:  # noqa: BLE001 - a shadow failure must never reach the live path
            metrics.DROPPED.labels(reason=step).inc()
            log.warning(
                "shadow.batch_dropped",
                step=step,
                error_type=type(exc).__name__,
                error=str(exc)[:300],
                posts=len(decisions),
            )
            return
        for row in rows:
            metrics.POSTS.labels(live=row.live_verdict.value, shadow=row.shadow_verdict.value).inc()

    async def _score(
        self, decisions: list[DecisionEvent], texts: dict[str, str]
    ) -> list[ShadowDecision]:
        batch = [texts.get(d.post_id, "") for d in decisions]
        started = time.perf_counter()
        if self._same_gate:
            gated = held_back_live(decisions)
        else:
            gated, _ = await held_back(self._policy, batch)
        scores = await score_passed(self._classifier, batch, gated)
        seconds = time.perf_counter() - started
        metrics.SECONDS.observe(seconds)
        return shadow_decisions(
            decisions,
            scores,
            policy=self._policy,
            model_version=self._classifier.model_version,
            seconds=seconds,
            now=datetime.now(UTC),
        )

    async def _publish(self, rows: list[ShadowDecision]) -> None:
        if not self._publisher_started:
            await self._publisher.start()
            self._publisher_started = True
        await self._publisher.publish(
            self._topic, [(row.post_id.encode(), encode(row)) for row in rows]
        )

    async def drain(self, within: float = _DRAIN_SECONDS) -> None:
        """Let the shadow batches in flight finish (at most ``within`` s), then cancel the rest."""
        if not self._pending:
            return
        _, late = await asyncio.wait(set(self._pending), timeout=within)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
            log.warning("shadow.drain_cancelled", batches=len(late))

    async def close(self) -> None:
        """Drain, stop the producer and the pool, and release the candidate's inference thread."""
        await self.drain()
        await self._publisher.stop()
        await self._store.close()
        self._classifier.close()
