"""The model registry's decisions (pure): which version is active, whether a promotion is valid,
what a rollback goes back to, and whether a running stage should switch.

The promotion history is append-only; the active version is its latest row. A rollback undoes
the latest promotion still in force: replaying the history as a stack (a promotion pushes, a
rollback pops), it goes to the version beneath the active one. So after promoting A, B, C, two
rollbacks go to B and then A, and a third says there is nothing to roll back to. The first
rollback always goes to what the active version replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pipeline.errors import ModerationError

__all__ = [
    "ModelIdentity",
    "Promotion",
    "PromotionAction",
    "PromotionRequest",
    "RegisteredModel",
    "RegistryDecisionError",
    "active_version",
    "promotion",
    "rollback",
    "version_stack",
    "wants_switch",
]


class RegistryDecisionError(ModerationError):
    """A registry request that cannot be carried out; the message says what to do instead."""

    retriable = False


class PromotionAction(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """What a loaded classifier is: its manifest's version and the manifest file's sha256."""

    version: str
    manifest_sha256: str


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """One registered version: where its (immutable) files live and how it evaluated."""

    version: str
    manifest_sha256: str
    path: str
    evaluation: dict[str, Any] | None
    registered_at: datetime
    registered_by: str

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.version, self.manifest_sha256)


@dataclass(frozen=True, slots=True)
class Promotion:
    """One row of the append-only promotion history."""

    version: str
    replaced: str | None
    action: PromotionAction
    promoted_by: str
    reason: str
    promoted_at: datetime


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    """A history row to append (the store stamps the time)."""

    version: str
    replaced: str | None
    action: PromotionAction
    promoted_by: str
    reason: str


def active_version(history: Sequence[Promotion]) -> str | None:
    """The active version: the latest history row's, or ``None`` before any promotion."""
    return history[-1].version if history else None


def version_stack(history: Sequence[Promotion]) -> list[str]:
    """The versions a rollback can walk back through, oldest first; the last one is active."""
    stack: list[str] = []
    for row in history:
        if row.action is PromotionAction.PROMOTE:
            stack.append(row.version)
        elif stack:
            stack.pop()
            if not stack or stack[-1] != row.version:  # a history this module did not write
                stack.append(row.version)
    return stack


def promotion(
    version: str,
    *,
    registered: Sequence[str],
    history: Sequence[Promotion],
    by: str,
    reason: str = "",
) -> PromotionRequest:
    """The row that makes ``version`` active, or why it cannot be promoted."""
    if version not in registered:
        known = ", ".join(sorted(registered)) or "none yet"
        raise RegistryDecisionError(
            f"model version {version!r} is not registered (registered: {known}); register it "
            "first: `modstream model register MODEL_DIR`"
        )
    active = active_version(history)
    if version == active:
        raise RegistryDecisionError(
            f"model version {version!r} is already active; nothing to promote "
            "(`modstream model list` shows the registry)"
        )
    return PromotionRequest(version, active, PromotionAction.PROMOTE, by, reason)


def rollback(history: Sequence[Promotion], *, by: str, reason: str = "") -> PromotionRequest:
    """The row that undoes the latest promotion in force, or why there is nothing to undo."""
    stack = version_stack(history)
    if not stack:
        raise RegistryDecisionError(
            "nothing to roll back to: no model version was ever promoted "
            "(promote one with `modstream model promote VERSION`)"
        )
    if len(stack) == 1:
        raise RegistryDecisionError(
            f"nothing to roll back to: {stack[0]!r} is the first promoted version still in "
            "force; promote the version you want instead (`modstream model promote VERSION`)"
        )
    return PromotionRequest(stack[-2], stack[-1], PromotionAction.ROLLBACK, by, reason)


def wants_switch(loaded: ModelIdentity, active: RegisteredModel | None) -> bool:
    """Whether a stage running ``loaded`` should load ``active``.

    An empty registry (``active`` is ``None``) keeps whatever the stage runs; a version whose
    manifest differs from the loaded one (same version rebuilt elsewhere) is switched to.
    """
    return active is not None and active.identity != loaded
