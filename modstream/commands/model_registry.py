"""``modstream model register|promote|rollback|list``: the model registry (Postgres).

Running real-time stages follow the active version (they poll the registry every
``MODSTREAM_MODEL_POLL_SECONDS`` and switch between micro-batches); a replay uses the version
active when it starts.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.model import model
from pipeline.config import Settings
from pipeline.core.model_registry import (
    Promotion,
    PromotionRequest,
    RegisteredModel,
    active_version,
    promotion,
    rollback,
)
from pipeline.errors import DependencyUnavailableError

if TYPE_CHECKING:
    from pipeline.store.model_registry import Decide, PostgresModelRegistry

T = TypeVar("T")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "unknown"


def _with_registry(settings: Settings, work: Callable[[PostgresModelRegistry], Awaitable[T]]) -> T:
    """Run ``work(registry)`` against the settings' Postgres; say what to do when it is down."""
    from pipeline.store.model_registry import PostgresModelRegistry
    from pipeline.store.pg import PostgresStore

    async def main() -> T:
        store = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=2)
        try:
            return await work(PostgresModelRegistry(store.pool))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except DependencyUnavailableError as exc:
        raise click.ClickException(
            f"{exc}; start the stack (`modstream up`) or check MODSTREAM_POSTGRES_DSN"
        ) from None


def _evaluation(path: Path | None) -> dict[str, Any] | None:
    """The evaluation figures: a JSON object, or output whose last JSON line is one (``model
    eval``'s last line)."""
    if path is None:
        return None
    text = path.read_text(encoding="utf-8")
    candidates = [text, *reversed([line for line in text.splitlines() if line.strip()])]
    for candidate in candidates:
        try:
            document = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    raise click.BadParameter(
        f"{path} holds no JSON object; pass the output of `modstream model eval`",
        param_hint="--eval",
    )


def _model_document(row: RegisteredModel, active: str | None) -> dict[str, Any]:
    return {
        "version": row.version,
        "active": row.version == active,
        "manifest_sha256": row.manifest_sha256,
        "path": row.path,
        "registered_at": row.registered_at.isoformat(),
        "registered_by": row.registered_by,
        "evaluation": row.evaluation,
    }


def _promotion_document(row: Promotion) -> dict[str, Any]:
    return {
        "version": row.version,
        "replaced": row.replaced,
        "action": row.action.value,
        "by": row.promoted_by,
        "reason": row.reason,
        "at": row.promoted_at.isoformat(),
    }


def _said(row: Promotion, poll_seconds: float) -> str:
    replaced = f" (replaces {row.replaced})" if row.replaced else ""
    return (
        f"{row.action.value}: {row.version} is active{replaced}, by {row.promoted_by}; running "
        f"real-time stages switch within about {poll_seconds:g} s, between micro-batches"
    )


_by = click.option("--by", default=None, help="Who does it (default: the OS user).")
_reason = click.option("--reason", default="", help="Why, for the promotion history.")


@model.command("register")
@click.argument("model_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Evaluation figures to record (JSON, e.g. the output of `modstream model eval`).",
)
@_by
@pass_context
def register_cmd(
    ctx: CommandContext, model_dir: Path, eval_path: Path | None, by: str | None
) -> None:
    """Copy a built model folder into the registry (verified, read-only) and record it."""
    from pipeline.registry.config import RegistryConfig
    from pipeline.registry.files import copy_into_registry

    settings = ctx.settings
    evaluation = _evaluation(eval_path)
    target, identity = copy_into_registry(
        model_dir,
        RegistryConfig.from_settings(settings).files,
        step=lambda msg: click.echo(f"model register: {msg}", err=True),
    )

    async def work(registry: PostgresModelRegistry) -> tuple[RegisteredModel, bool]:
        return await registry.register(
            identity, path=str(target), evaluation=evaluation, by=by or _os_user()
        )

    row, new = _with_registry(settings, work)
    state = "registered" if new else "already registered (kept as it was)"
    click.echo(
        f"{row.version} {state}: manifest sha256 {row.manifest_sha256[:12]}…, files at "
        f"{row.path}; make it active with `modstream model promote {row.version}`"
    )


def _append(settings: Settings, decide: Decide) -> Promotion:
    async def work(registry: PostgresModelRegistry) -> Promotion:
        return await registry.append(decide)

    return _with_registry(settings, work)


@model.command("promote")
@click.argument("version")
@_by
@_reason
@pass_context
def promote_cmd(ctx: CommandContext, version: str, by: str | None, reason: str) -> None:
    """Make a registered VERSION the active model."""

    def decide(registered: Sequence[str], history: Sequence[Promotion]) -> PromotionRequest:
        return promotion(
            version, registered=registered, history=history, by=by or _os_user(), reason=reason
        )

    row = _append(ctx.settings, decide)
    click.echo(_said(row, ctx.settings.model_poll_seconds))


@model.command("rollback")
@_by
@_reason
@pass_context
def rollback_cmd(ctx: CommandContext, by: str | None, reason: str) -> None:
    """Go back to the version the active one replaced (undoes the latest promotion in force)."""
    row = _append(ctx.settings, partial(_rollback, by=by or _os_user(), reason=reason))
    click.echo(_said(row, ctx.settings.model_poll_seconds))


def _rollback(
    registered: Sequence[str], history: Sequence[Promotion], *, by: str, reason: str
) -> PromotionRequest:
    del registered  # a rollback only goes back to versions that were registered and promoted
    return rollback(history, by=by, reason=reason)


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_context
def list_cmd(ctx: CommandContext, as_json: bool) -> None:
    """Registered versions (the active one marked) and the promotion history."""

    async def work(
        registry: PostgresModelRegistry,
    ) -> tuple[list[RegisteredModel], list[Promotion]]:
        return await registry.versions(), await registry.history()

    versions, history = _with_registry(ctx.settings, work)
    active = active_version(history)
    if as_json:
        document = {
            "active": active,
            "versions": [_model_document(v, active) for v in versions],
            "history": [_promotion_document(p) for p in history],
        }
        click.echo(json.dumps(document))
        return
    if not versions:
        click.echo("no model versions registered; `modstream model register MODEL_DIR` adds one")
        return
    for row in versions:
        mark = "*" if row.version == active else " "
        figures = ", ".join(f"{k}={v}" for k, v in (row.evaluation or {}).items() if _scalar(v))
        click.echo(
            f"{mark} {row.version}  {row.manifest_sha256[:12]}  "
            f"{row.registered_at:%Y-%m-%d %H:%M}Z by {row.registered_by}"
            + (f"  {figures}" if figures else "")
        )
    if active is None:
        click.echo("no version promoted yet: stages use the settings' model folder")
    for p in history:
        replaced = f" (replaced {p.replaced})" if p.replaced else ""
        reason = f": {p.reason}" if p.reason else ""
        click.echo(
            f"  {p.promoted_at:%Y-%m-%d %H:%M:%S}Z {p.action.value} {p.version}{replaced} "
            f"by {p.promoted_by}{reason}"
        )


def _scalar(value: object) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)
