"""The run's advisory lock, kept across Postgres restarts.

A session advisory lock (:func:`replay.store.try_lock_run`) keeps one live process per run. The
lock lives as long as its connection, so a Postgres restart drops it; :meth:`RunLock.ensure` opens
a new connection and takes the lock again before the run writes anything more. If another
process took the run meanwhile, this one stops (:class:`RunTakenOverError`).
"""

from __future__ import annotations

import contextlib

import asyncpg

from pipeline.errors import ModerationError
from pipeline.log import get_logger
from pipeline.store.errors import translated
from replay import store

log = get_logger(__name__)


def _alive(conn: asyncpg.Connection) -> bool:
    """False once the server dropped the connection (the pool then detaches its proxy)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class RunTakenOverError(ModerationError):
    """Another process locked the run while this one was cut off from Postgres."""


class RunLock:
    """The connection that holds the run's lock (also used for the run's bookkeeping)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection | None = None
        self.run_id: str | None = None

    async def ensure(self) -> asyncpg.Connection:
        """The lock connection; reconnects and re-locks the run if the server dropped it."""
        conn = self._conn
        if conn is not None and _alive(conn):
            return conn
        if conn is not None:
            await self._drop()
        with translated():
            conn = await self._pool.acquire()
        self._conn = conn
        if self.run_id is not None:
            if not await store.try_lock_run(conn, self.run_id):
                raise RunTakenOverError(
                    f"run {self.run_id} was taken over by another process while Postgres was "
                    "unreachable; this process stops"
                )
            log.info("replay.relocked", run_id=self.run_id)
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                await self._pool.release(conn)

    async def close(self) -> None:
        """Unlock (best effort: a dead connection released its lock already) and release."""
        conn = self._conn
        if conn is not None and self.run_id is not None and _alive(conn):
            with contextlib.suppress(ModerationError):
                await store.unlock_run(conn, self.run_id)
        await self._drop()
