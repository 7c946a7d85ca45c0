"""The model registry in Postgres (migration 0009): registered versions and the append-only
promotion history. What a promotion or rollback may do is decided by the pure core
(:mod:`pipeline.core.model_registry`); this module reads, and appends under a table lock so two
operators promoting at once cannot both build on the same "active" version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from pipeline.core.model_registry import (
    ModelIdentity,
    Promotion,
    PromotionAction,
    PromotionRequest,
    RegisteredModel,
    RegistryDecisionError,
)
from pipeline.store.errors import translated

__all__ = ["PostgresModelRegistry"]

_VERSIONS = """
SELECT version, manifest_sha256, path, evaluation, registered_at, registered_by
FROM model_versions ORDER BY registered_at, version
"""
_VERSION = """
SELECT version, manifest_sha256, path, evaluation, registered_at, registered_by
FROM model_versions WHERE version = $1
"""
_HISTORY = """
SELECT version, replaced, action, promoted_by, reason, promoted_at
FROM model_promotions ORDER BY id
"""
_ACTIVE = """
SELECT v.version, v.manifest_sha256, v.path, v.evaluation, v.registered_at, v.registered_by
FROM model_promotions p JOIN model_versions v ON v.version = p.version
ORDER BY p.id DESC LIMIT 1
"""
_REGISTER = """
INSERT INTO model_versions (version, manifest_sha256, path, evaluation, registered_by)
VALUES ($1, $2, $3, $4::jsonb, $5)
ON CONFLICT (version) DO NOTHING
"""
_APPEND = """
INSERT INTO model_promotions (version, replaced, action, promoted_by, reason)
VALUES ($1, $2, $3, $4, $5)
RETURNING version, replaced, action, promoted_by, reason, promoted_at
"""
# Serialises promotions and rollbacks (readers are not blocked).
_LOCK = "LOCK TABLE model_promotions IN SHARE ROW EXCLUSIVE MODE"

Decide = Callable[[Sequence[str], Sequence[Promotion]], PromotionRequest]


def _model(row: asyncpg.Record) -> RegisteredModel:
    evaluation = row["evaluation"]
    return RegisteredModel(
        version=row["version"],
        manifest_sha256=row["manifest_sha256"],
        path=row["path"],
        evaluation=json.loads(evaluation) if evaluation is not None else None,
        registered_at=row["registered_at"],
        registered_by=row["registered_by"],
    )


def _promotion(row: asyncpg.Record) -> Promotion:
    return Promotion(
        version=row["version"],
        replaced=row["replaced"],
        action=PromotionAction(row["action"]),
        promoted_by=row["promoted_by"],
        reason=row["reason"],
        promoted_at=row["promoted_at"],
    )


class PostgresModelRegistry:
    """Reads and appends the registry's two tables through ``pool``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def versions(self) -> list[RegisteredModel]:
        """Every registered version, oldest first."""
        with translated():
            return [_model(r) for r in await self._pool.fetch(_VERSIONS)]

    async def history(self) -> list[Promotion]:
        """The promotion history, oldest first (the last row is the active version)."""
        with translated():
            return [_promotion(r) for r in await self._pool.fetch(_HISTORY)]

    async def active(self) -> RegisteredModel | None:
        """The active version, or ``None`` while nothing was ever promoted."""
        with translated():
            row = await self._pool.fetchrow(_ACTIVE)
        return _model(row) if row is not None else None

    async def register(
        self,
        identity: ModelIdentity,
        *,
        path: str,
        evaluation: dict[str, Any] | None,
        by: str,
    ) -> tuple[RegisteredModel, bool]:
        """Record a version whose files are in place; returns it and whether it is new.

        The same build registered again is kept as it was (its first evaluation and time);
        a different build under a version already taken is refused.
        """
        payload = json.dumps(evaluation) if evaluation is not None else None
        with translated():
            async with self._pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    _REGISTER, identity.version, identity.manifest_sha256, path, payload, by
                )
                row = await conn.fetchrow(_VERSION, identity.version)
        if row is None:  # inserted or already there, in this transaction: never None
            raise RegistryDecisionError(f"model version {identity.version!r} was not recorded")
        model = _model(row)
        if model.manifest_sha256 != identity.manifest_sha256:
            raise RegistryDecisionError(
                f"model version {identity.version!r} is already registered with another build "
                f"(manifest sha256 {model.manifest_sha256[:12]}…); give the new build its own "
                "version"
            )
        return model, status.endswith(" 1")

    async def append(self, decide: Decide) -> Promotion:
        """Append the row ``decide(registered versions, history)`` returns, atomically.

        ``decide`` is one of the core's decisions (:func:`~pipeline.core.model_registry.promotion`
        or :func:`~pipeline.core.model_registry.rollback`, partially applied); it may raise
        :class:`~pipeline.core.model_registry.RegistryDecisionError`, and then nothing is written.
        """
        with translated():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_LOCK)
                registered = [r["version"] for r in await conn.fetch(_VERSIONS)]
                history = [_promotion(r) for r in await conn.fetch(_HISTORY)]
                request = decide(registered, history)
                row = await conn.fetchrow(
                    _APPEND,
                    request.version,
                    request.replaced,
                    request.action.value,
                    request.promoted_by,
                    request.reason,
                )
        if row is None:  # INSERT ... RETURNING always returns the row
            raise RegistryDecisionError(f"the {request.action.value} was not recorded")
        return _promotion(row)
