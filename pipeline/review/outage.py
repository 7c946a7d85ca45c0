"""Postgres outages: the review app answers 503 with ``Retry-After`` and reports not ready.

While Postgres cannot be reached, every request that needs it fails fast (a refused connection)
and becomes :class:`BusyError`; the readiness probe reports not-ready until a sweep succeeds
again. asyncpg's pool reconnects by itself, so nothing restarts when Postgres returns.
"""

from __future__ import annotations

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pipeline.errors import ServiceUnavailableError
from pipeline.log import get_logger
from pipeline.review.errors import BusyError

log = get_logger(__name__)

RETRY_AFTER_S = 5.0

POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset, timeouts (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx: shutting down, starting up
    asyncpg.exceptions.ConnectionDoesNotExistError,  # the server went away mid-query
)
"""What asyncpg raises when the server cannot be reached (as opposed to a bad query)."""
_UNAVAILABLE: tuple[type[BaseException], ...] = (*POSTGRES_DOWN, ServiceUnavailableError)


class Health:
    """Readiness of the review app: whether Postgres answered the last time it was asked."""

    def __init__(self) -> None:
        self.ready, self.detail = False, "starting"

    def up(self) -> None:
        self.ready, self.detail = True, "ok"

    def down(self, detail: str) -> None:
        self.ready, self.detail = False, detail

    def __call__(self) -> tuple[bool, str]:
        return self.ready, self.detail


def postgres_outages(health: Health) -> Middleware:
    """A middleware that turns an unreachable Postgres (or any dependency the store reports as
    unavailable) into 503 and marks the app not ready."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except aiohttp.ClientError:
            raise  # the client went away; not a Postgres problem
        except _UNAVAILABLE as exc:
            health.down(f"dependency unavailable: {type(exc).__name__}")
            log.warning("review.postgres_unavailable", error=type(exc).__name__)
            raise BusyError(
                "the review database is unavailable right now; try again in a few seconds",
                retry_after=RETRY_AFTER_S,
            ) from None

    return middleware
