"""Translate asyncpg's exceptions into the pipeline's taxonomy (:mod:`pipeline.errors`).

SQLSTATE classes decide: connection trouble, resource exhaustion, operator intervention
(restart, failover) and serialization conflicts mean "try again later"; data exceptions and
constraint or limit violations mean "this record"; authentication, a missing database or table
and missing privileges mean "fix the configuration". Details name the error class and SQLSTATE
only, never the values that were written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
from asyncpg.exceptions._base import DataError as ClientDataError
from asyncpg.exceptions._base import InternalClientError

from pipeline.errors import DependencyConfigError, DependencyUnavailableError, RecordRejectedError

DEPENDENCY = "postgres"

_UNAVAILABLE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX"})
_REJECTED_CLASSES = frozenset({"21", "22", "23", "54"})
_CONFIG_CLASSES = frozenset({"28", "3D", "3F", "42"})


def _detail(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} (SQLSTATE {sqlstate})" if sqlstate else type(exc).__name__


def translate(exc: BaseException) -> Exception | None:
    """The taxonomy error for ``exc``, or ``None`` if it is not a database error (a bug)."""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        klass = sqlstate[:2]
        if klass in _REJECTED_CLASSES:
            return RecordRejectedError(DEPENDENCY, _detail(exc))
        if klass in _CONFIG_CLASSES:
            return DependencyConfigError(
                f"Postgres refused this process: {_detail(exc)}. Check MODSTREAM_POSTGRES_DSN "
                "(user, password, database) and run `modstream migrate`."
            )
        if klass in _UNAVAILABLE_CLASSES:
            return DependencyUnavailableError(DEPENDENCY, _detail(exc))
        return RecordRejectedError(DEPENDENCY, _detail(exc))
    # asyncpg's client-side DataError: a value it cannot encode (e.g. a lone surrogate).
    if isinstance(exc, ClientDataError | UnicodeError | OverflowError):
        return RecordRejectedError(DEPENDENCY, _detail(exc))
    # InternalClientError: the protocol lost its state when the connection broke mid-operation
    # (seen when Postgres is killed during a transaction); the connection is discarded.
    if isinstance(exc, asyncpg.InterfaceError | InternalClientError | OSError | TimeoutError):
        return DependencyUnavailableError(DEPENDENCY, _detail(exc))
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise database errors raised inside the block as taxonomy errors."""
    try:
        yield
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        InternalClientError,
        OSError,
        TimeoutError,
    ) as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
    except (UnicodeError, OverflowError) as exc:
        raise RecordRejectedError(DEPENDENCY, _detail(exc)) from exc
