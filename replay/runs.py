"""Run bookkeeping: open (or resume) a run in ``replay_runs``, checkpoint chunks, save the state,
store the final report; the run's advisory lock is held throughout (:mod:`replay.runlock`).

"The same run" is recognised by :meth:`replay.request.ReplayRequest.key`: the same command finds
the unfinished run with the same options (or ``--resume ID``) and continues after its last
checkpoint. A run made with another model or policy version is never resumed.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from pipeline.errors import ModerationError
from pipeline.log import get_logger
from replay import store
from replay.commit import ChunkDone, Publish, commit_chunk
from replay.decide import ChunkPlan
from replay.errors import ReplayError
from replay.outage import ReplayGuard
from replay.report import Tally
from replay.request import ReplayRequest
from replay.run_state import RUNNING, SUCCEEDED, RunState
from replay.runlock import RunLock
from replay.selection import Selection

log = get_logger(__name__)


def new_run_id(now: datetime) -> str:
    return f"replay-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


class RunBook:
    """One run's rows in ``replay_runs`` / ``replay_checkpoints`` and its lock."""

    def __init__(
        self,
        request: ReplayRequest,
        *,
        pool: asyncpg.Pool,
        guard: ReplayGuard,
        model_version: str,
        policy_version: str,
        frontier_model: str,
        fallback_version: str,
        max_samples: int,
    ) -> None:
        self._req = request
        self._pool = pool
        self._guard = guard
        self._model = model_version
        self._policy = policy_version
        self._frontier_model = frontier_model
        self._fallback_version = fallback_version
        self._max_samples = max_samples
        self._lock = RunLock(pool)
        self.run_id: str | None = None

    # --- opening ------------------------------------------------------------------------------
    async def open(self) -> tuple[Selection, store.Progress, RunState]:
        """The run's frozen selection, where to continue, and its state (retried through
        outages). A dry run resolves the selection only and records nothing."""
        return await self._guard.call(self._open, what="open the run")

    async def _open(self) -> tuple[Selection, store.Progress, RunState]:
        conn = await self._lock.ensure()
        if self._req.dry_run:
            return await self._resolve(conn), store.Progress(0, None), self._fresh_state()
        opened = await self._open_run(conn)
        self._lock.run_id = self.run_id
        return opened

    def _fresh_state(self) -> RunState:
        return RunState(tally=Tally(max_samples=self._max_samples))

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
            model_version=self._model,
            policy_version=self._policy,
            current_versions=(self._model, self._frontier_model, self._fallback_version),
            category=req.category,
            sample=req.sample,
            shard_index=req.shard_index,
            shard_count=req.shard_count,
            id_prefix=req.id_prefix,
        )

    async def _open_run(
        self, lock: asyncpg.Connection
    ) -> tuple[Selection, store.Progress, RunState]:
        """Resume the requested or a matching unfinished run, or start a new one."""
        key = self._req.key(self._model, self._policy)
        if self._req.resume is not None:
            run = await store.get_run(lock, self._req.resume)
            if run is None:
                raise ReplayError(f"no replay run {self._req.resume!r}; see replay_runs")
            if run.status == SUCCEEDED:
                raise ReplayError(f"run {run.run_id} already succeeded; nothing to resume")
            if not await store.try_lock_run(lock, run.run_id):
                raise ReplayError(f"run {run.run_id} is being processed by another process")
            return await self._adopt(lock, run)
        if not self._req.new_run:
            for run in await store.resumable_runs(lock, key):
                if await store.try_lock_run(lock, run.run_id):
                    log.info("replay.resuming", run_id=run.run_id, status=run.status)
                    return await self._adopt(lock, run)
                if run.status == RUNNING:
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
        state = self._fresh_state()
        await store.create_run(lock, run_id, params, state.to_json())
        if not await store.try_lock_run(lock, run_id):
            raise ReplayError(f"could not lock the new run {run_id}")
        self.run_id = run_id
        return selection, store.Progress(next_chunk=0, after=None), state

    async def _adopt(
        self, lock: asyncpg.Connection, run: store.RunRow
    ) -> tuple[Selection, store.Progress, RunState]:
        selection = Selection.from_json(run.params["selection"])
        if (selection.model_version, selection.policy_version) != (self._model, self._policy):
            raise ReplayError(
                f"run {run.run_id} was made with model {selection.model_version} / policy "
                f"{selection.policy_version}, but now model {self._model} / policy "
                f"{self._policy} are loaded: start a new run instead of resuming it"
            )
        self.run_id = run.run_id
        state = RunState.from_json(run.report, max_samples=self._max_samples)
        state.resumed()
        await store.mark_running(lock, run.run_id)
        return selection, await store.progress(lock, run.run_id), state

    # --- while running ------------------------------------------------------------------------
    def _require_run(self) -> str:
        if self.run_id is None:
            raise ReplayError("no run to write to")
        return self.run_id

    async def checkpoint(
        self, done: ChunkDone, plan: ChunkPlan, state: RunState, publish: Publish
    ) -> RunState:
        """Commit a chunk with its checkpoint and ``state`` (its counts included), retried
        through outages; returns the state now stored."""
        run_id = self._require_run()
        attempts = 0

        async def attempt() -> RunState:
            nonlocal attempts
            attempts += 1
            await self._lock.ensure()
            return await commit_chunk(
                self._pool, run_id, done, plan, publish=publish, state=state, retry=attempts > 1
            )

        return await self._guard.call(attempt, what=f"write chunk {done.number}")

    async def save(self, state: RunState) -> None:
        run_id = self._require_run()
        await self._guard.on_connection(
            self._pool,
            lambda c: store.save_state(c, run_id, state.to_json()),
            what="save the run state",
        )

    # --- the end ------------------------------------------------------------------------------
    async def finish(self, status: str, state: RunState, report: dict[str, object]) -> None:
        """Store the report; retried through outages on success, best effort on failure."""
        run_id = self.run_id
        if run_id is None or self._req.dry_run:
            return
        final = state.final_json(report, status)  # keeps what a resume needs

        async def record() -> None:
            await store.finish_run(await self._lock.ensure(), run_id, status, final)

        if status == SUCCEEDED:
            await self._guard.call(record, what="store the report")
            return
        try:
            await record()
        except ModerationError as exc:
            log.error("replay.finish_not_recorded", run_id=run_id, error=str(exc))

    def resume_hint(self) -> str:
        """How to continue this run from its last checkpoint."""
        if self.run_id is None or self._req.dry_run:
            return "run the same command again"
        return (
            f"run the same command again, or `modstream replay --resume {self.run_id}`, to "
            "continue from the last checkpoint"
        )

    async def close(self) -> None:
        """Unlock the run and release the lock's connection."""
        await self._lock.close()
