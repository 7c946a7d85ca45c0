"""Reviewer accounts and server-side sessions in Postgres.

A session is a random token in an HttpOnly cookie; the table stores only its sha256, plus the
session's CSRF token. A session ends ``session_idle_seconds`` after its last request, and at the
latest ``session_ttl_seconds`` after login: every request moves ``expires_at`` to
``least(created_at + ttl, now() + idle)``, so ``expires_at`` is the one deadline checked.

Passwords are hashed and verified in a :class:`PasswordPool`, off the event loop.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from pipeline.review import audit
from pipeline.review.errors import InvalidInputError, UserExistsError
from pipeline.review.passwords import PasswordPool
from pipeline.review.rules import Role

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")

# The live session, its idle clock restarted when that moves its expiry later by more than $4 s
# or earlier at all (the data-modifying CTE writes nothing, and flushes no WAL, otherwise).
_SESSION = """
WITH live AS (
    SELECT s.token_hash, s.username, u.role, s.csrf_token, s.expires_at,
           least(s.created_at + make_interval(secs => $2),
                 now() + make_interval(secs => $3)) AS renewed
    FROM review_sessions s JOIN review_users u ON u.username = s.username
    WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled
), touched AS (
    UPDATE review_sessions r SET expires_at = live.renewed
    FROM live
    WHERE r.token_hash = live.token_hash
      AND (live.renewed > live.expires_at + make_interval(secs => $4)
           OR live.renewed < live.expires_at)  -- the absolute TTL (or a shorter idle) caps it
    RETURNING r.expires_at
)
SELECT username, role, csrf_token, coalesce((SELECT expires_at FROM touched), expires_at)
       AS expires_at
FROM live
"""


@dataclass(frozen=True, slots=True)
class Session:
    """The signed-in reviewer behind a request."""

    username: str
    role: Role
    csrf_token: str
    expires_at: datetime

    @property
    def is_lead(self) -> bool:
        return self.role is Role.LEAD


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise InvalidInputError(
            "usernames are 2-63 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return username


class Accounts:
    """Users, password checks and sessions."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        session_ttl_seconds: float,
        session_idle_seconds: float | None = None,
        passwords: PasswordPool | None = None,
    ) -> None:
        self._pool = pool
        self._ttl = session_ttl_seconds
        self._idle = min(session_idle_seconds or session_ttl_seconds, session_ttl_seconds)
        self._passwords = passwords if passwords is not None else PasswordPool(workers=1)

    async def create_user(self, username: str, password: str, role: Role, *, actor: str) -> None:
        """Create an account (audited). Raises :class:`UserExistsError` if the name is taken."""
        check_username(username)
        try:
            password_hash = await self._passwords.hash(password)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO review_users (username, password_hash, role, created_by) "
                    "VALUES ($1, $2, $3, $4)",
                    username,
                    password_hash,
                    role.value,
                    actor,
                )
            except asyncpg.UniqueViolationError:
                raise UserExistsError(
                    f"user {username!r} already exists; pick another name"
                ) from None
            await audit.record(conn, actor, "user.create", username, role=role.value)

    async def login(self, username: str, password: str) -> tuple[str, Session] | None:
        """Check the password and open a session: ``(cookie token, session)``, or ``None``.

        Both outcomes are audited.
        """
        row = await self._pool.fetchrow(
            "SELECT password_hash, role FROM review_users WHERE username = $1 AND NOT disabled",
            username,
        )
        matched = await self._passwords.verify(row["password_hash"] if row else None, password)
        if row is None or not matched:
            await audit.record(self._pool, username[:64] or "?", "login.failed")
            return None
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        async with self._pool.acquire() as conn, conn.transaction():
            expires_at = await conn.fetchval(
                "INSERT INTO review_sessions (token_hash, username, csrf_token, expires_at) "
                "VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at",
                _token_hash(token),
                username,
                csrf,
                self._idle,
            )
            await audit.record(conn, username, "login")
        return token, Session(username, Role(row["role"]), csrf, expires_at)

    async def session(self, token: str) -> Session | None:
        """The live session behind a cookie token, if any; using it restarts its idle clock.

        The clock is moved only when that gains more than a tenth of the idle timeout (at most
        a minute): most requests then only read, and a read commits without a WAL flush.
        """
        row = await self._pool.fetchrow(
            _SESSION,
            _token_hash(token),
            self._ttl,
            self._idle,
            min(60.0, self._idle / 10),
        )
        if row is None:
            return None
        return Session(row["username"], Role(row["role"]), row["csrf_token"], row["expires_at"])

    async def logout(self, token: str, username: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM review_sessions WHERE token_hash = $1", _token_hash(token)
            )
            await audit.record(conn, username, "logout")

    async def logout_others(self, token: str, username: str) -> int:
        """End every session of ``username`` except the one behind ``token``; how many ended."""
        async with self._pool.acquire() as conn, conn.transaction():
            result: str = await conn.execute(
                "DELETE FROM review_sessions WHERE username = $1 AND token_hash <> $2",
                username,
                _token_hash(token),
            )
            ended = int(result.split()[-1])
            await audit.record(conn, username, "logout.others", username, sessions=ended)
        return ended

    async def record_throttled(self, username: str, address: str, scope: str) -> None:
        """Audit a login attempt refused by the throttle (no password was checked)."""
        await audit.record(
            self._pool, username[:64] or "?", "login.throttled", address=address, scope=scope
        )

    async def purge_expired(self) -> int:
        result: str = await self._pool.execute(
            "DELETE FROM review_sessions WHERE expires_at <= now()"
        )
        return int(result.split()[-1])
