"""Password hashing (argon2id via argon2-cffi); the only importer of ``argon2``.

argon2 is deliberately slow and memory-hard, so :class:`PasswordPool` runs it in a few threads
(argon2-cffi releases the GIL) behind a bounded waiting room: a flood of password guesses queues
there or is refused with 503, and never stalls the event loop that serves logged-in reviewers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pipeline.review.errors import BusyError

MIN_PASSWORD_LENGTH = 12
BUSY_RETRY_AFTER_S = 2.0

_HASHER = PasswordHasher()
_T = TypeVar("_T")


@cache
def _dummy_hash() -> str:
    """Verified when the username is unknown, so a failed login takes as long either way."""
    return _HASHER.hash("modstream-no-such-user")


def hash_password(password: str) -> str:
    """An argon2id hash; raises ``ValueError`` for a password that is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; ``None`` (unknown user) still costs one verification."""
    try:
        matched = _HASHER.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


class PasswordPool:
    """argon2 off the event loop: ``workers`` threads, at most ``queue`` checks waiting.

    A check beyond that raises :class:`BusyError` (503 with ``Retry-After``) at once.
    """

    def __init__(self, *, workers: int = 2, queue: int = 32) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("a password pool needs workers >= 1 and queue >= 0")
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(workers)
        self._capacity = workers + queue
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Checks running or waiting right now."""
        return self._admitted

    async def _run(self, work: Callable[..., _T], *args: str | None) -> _T:
        if self._admitted >= self._capacity:
            raise BusyError(
                "too many sign-ins are being checked right now; try again in a few seconds",
                retry_after=BUSY_RETRY_AFTER_S,
            )
        self._admitted += 1
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, work, *args)
        finally:
            self._admitted -= 1

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
