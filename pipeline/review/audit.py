"""Appends to ``audit_log``: every reviewer action, inside the transaction that performs it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

_INSERT = "INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)"


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    actor: str,
    action: str,
    subject: str | None = None,
    **detail: Any,
) -> None:
    """One audit row. ``detail`` holds ids and outcomes, never post text or secrets."""
    await conn.execute(_INSERT, actor, action, subject, json.dumps(detail, default=str))
