"""The scoring pipeline of a run: read → score → decide → deliver, chunk by chunk.

Three asyncio tasks joined by small queues keep the classifier busy: the *reader* pages posts out
of Postgres (keyset by ``post_id``), the *scorer* runs the classifier on its own thread, and the
*writer* applies the policy (:func:`~replay.decide.decide_chunk`) and hands each chunk's plan to
the caller's ``deliver`` (commit with a checkpoint, or count only in a dry run). Reads go through
the run's :class:`~replay.outage.ReplayGuard`, so a Postgres outage pauses the pass.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from rich.console import Console
from rich.progress import Progress, TaskID

from classifiers.base import Classifier
from pipeline.core.policy import Policy
from pipeline.language_gate import held_back, score_passed
from replay import store
from replay.config import ReplayConfig
from replay.decide import ChunkPlan, ReplayPost, decide_chunk, prepare_text
from replay.outage import ReplayGuard
from replay.progress import LABEL, progress_bar, show_status
from replay.selection import Selection


@dataclass(slots=True)
class Chunk:
    """Posts read together, scored in one classifier call and committed with one checkpoint."""

    number: int
    posts: list[ReplayPost]
    texts: list[str] = field(default_factory=list)
    scores: list[dict[str, float] | None] = field(default_factory=list)
    cut: int = 0
    inference_seconds: float = 0.0


Deliver = Callable[[Chunk, ChunkPlan], Awaitable[None]]
"""Makes a decided chunk durable (or, in a dry run, only counts it)."""


class ScoringPass:
    """One pass over a run's selection, from a checkpoint to the end."""

    def __init__(
        self,
        config: ReplayConfig,
        *,
        pool: asyncpg.Pool,
        guard: ReplayGuard,
        classifier: Classifier,
        policy: Policy,
        console: Console,
        show_progress: bool,
    ) -> None:
        self._s = config
        self._pool = pool
        self._guard = guard
        self._clf = classifier
        self._policy = policy
        self._console = console
        self._show_progress = show_progress

    async def run(self, selection: Selection, start: store.Progress, deliver: Deliver) -> None:
        """Score every selected post after ``start``; each decided chunk goes to ``deliver``."""
        remaining = await self._guard.on_connection(
            self._pool,
            lambda c: store.count_selection(c, selection, start.after),
            what="count posts",
        )
        depth = self._s.queue_depth
        pages: asyncio.Queue[Chunk | None] = asyncio.Queue(maxsize=depth)
        scored: asyncio.Queue[Chunk | None] = asyncio.Queue(maxsize=depth)
        with progress_bar(self._console, enabled=self._show_progress) as progress:
            task = progress.add_task(LABEL, total=remaining)
            self._guard.set_status(lambda status: show_status(progress, task, status))
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read(selection, start, pages))
                    group.create_task(self._score(pages, scored))
                    group.create_task(self._write(scored, deliver, progress, task))
            except ExceptionGroup as group_error:  # one task failed: surface its error as is
                raise group_error.exceptions[0] from group_error
            finally:
                self._guard.set_status(None)

    async def _read(
        self, selection: Selection, start: store.Progress, out: asyncio.Queue[Chunk | None]
    ) -> None:
        number, after = start.next_chunk, start.after
        while True:
            posts = await self._guard.on_connection(
                self._pool,
                functools.partial(
                    store.fetch_page, sel=selection, after=after, limit=self._s.chunk_size
                ),
                what="read posts",
            )
            if not posts:
                break
            await out.put(Chunk(number, posts))
            number += 1
            after = posts[-1].post_id
        await out.put(None)

    async def _score(
        self, inbox: asyncio.Queue[Chunk | None], out: asyncio.Queue[Chunk | None]
    ) -> None:
        limit = self._s.max_text_chars
        while (chunk := await inbox.get()) is not None:
            for post in chunk.posts:
                text, was_cut = prepare_text(post.text, limit)
                chunk.cut += was_cut
                chunk.texts.append(text)
            held, _ = await held_back(self._policy, chunk.texts)
            started = time.perf_counter()
            chunk.scores = await score_passed(self._clf, chunk.texts, held)
            chunk.inference_seconds = time.perf_counter() - started
            await out.put(chunk)
        await out.put(None)

    async def _write(
        self,
        inbox: asyncio.Queue[Chunk | None],
        deliver: Deliver,
        progress: Progress,
        task: TaskID,
    ) -> None:
        while (chunk := await inbox.get()) is not None:
            plan = decide_chunk(
                chunk.posts,
                chunk.scores,
                policy=self._policy,
                model_version=self._clf.model_version,
                frontier_model=self._s.frontier_model,
                flip_severity_at=self._s.flip_severity,
                decided_at=datetime.now(UTC),
                max_samples=self._s.samples_per_transition,
                inference_seconds=chunk.inference_seconds,
            )
            plan.tally.truncated_text += chunk.cut
            await deliver(chunk, plan)
            progress.advance(task, len(chunk.posts))
