"""Reviewer accounts and server-side sessions in Postgres.

A session is a random token in an HttpOnly cookie; the table stores only its sha256, plus the
session's CSRF token. Sessions expire ``review_session_ttl_seconds`` after login.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from pipeline.review import audit
from pipeline.review.core import Role
from pipeline.review.errors import InvalidInputError, UserExistsError
from pipeline.review.passwords import hash_password, verify_password

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


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

    def __init__(self, pool: asyncpg.Pool, *, session_ttl_seconds: float) -> None:
        self._pool = pool
        self._ttl = session_ttl_seconds

    async def create_user(self, username: str, password: str, role: Role, *, actor: str) -> None:
        """Create an account (audited). Raises :class:`UserExistsError` if the name is taken."""
        check_username(username)
        try:
            password_hash = hash_password(password)
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
        matched = verify_password(row["password_hash"] if row else None, password)
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
                self._ttl,
            )
            await audit.record(conn, username, "login")
        return token, Session(username, Role(row["role"]), csrf, expires_at)

    async def session(self, token: str) -> Session | None:
        """The live session behind a cookie token, if any."""
        row = await self._pool.fetchrow(
            "SELECT s.username, u.role, s.csrf_token, s.expires_at "
            "FROM review_sessions s JOIN review_users u USING (username) "
            "WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled",
            _token_hash(token),
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

    async def purge_expired(self) -> int:
        result: str = await self._pool.execute(
            "DELETE FROM review_sessions WHERE expires_at <= now()"
        )
        return int(result.split()[-1])
