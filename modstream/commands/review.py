"""``modstream review``: the human review web app, accounts and labeled-example export."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

import click

from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings
from pipeline.log import get_logger

log = get_logger(__name__)


@click.group()
def review() -> None:
    """Human review queue: web UI, reviewer accounts, labeled examples."""


async def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    from modstream.commands.run import install_stop_signals
    from modstream.roots.review import running_review

    stop = asyncio.Event()
    install_stop_signals(stop)
    async with running_review(settings, host=host, port=port) as app:
        click.echo(f"review UI on http://{host or settings.review_host}:{app.port}/", err=True)
        await stop.wait()


@review.command("serve")
@click.option("--host", default=None, help="Bind address (default: MODSTREAM_REVIEW_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: MODSTREAM_REVIEW_PORT).")
@pass_context
def serve(ctx: CommandContext, host: str | None, port: int | None) -> None:
    """Serve the review web UI and JSON API until SIGTERM/SIGINT."""
    settings: Settings = ctx.settings
    asyncio.run(_serve(settings, host, port))


async def _add_user(settings: Settings, username: str, password: str, role: str) -> None:
    from pipeline.review.accounts import Accounts
    from pipeline.review.rules import Role
    from pipeline.store.pg import PostgresStore

    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
    try:
        accounts = Accounts(store.pool, session_ttl_seconds=settings.review_session_ttl_seconds)
        await accounts.create_user(username, password, Role(role), actor="cli")
    finally:
        await store.close()


@review.command("add-user")
@click.option("--username", required=True, help="Login name (lowercase letters, digits, . _ -).")
@click.option(
    "--role", type=click.Choice(["reviewer", "lead"]), default="reviewer", show_default=True
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
@pass_context
def add_user(ctx: CommandContext, username: str, role: str, password_stdin: bool) -> None:
    """Create a reviewer or lead account (the password is prompted for, never an argument)."""
    settings: Settings = ctx.settings
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    from pipeline.review.errors import ReviewError

    try:
        asyncio.run(_add_user(settings, username, password, role))
    except ReviewError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"created {role} {username}")


async def _export(settings: Settings, out: Path, since: datetime | None) -> int:
    from pipeline.review.labels import export_labels
    from pipeline.store.pg import PostgresStore

    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
    try:
        tmp = out.with_name(out.name + ".partial")
        with tmp.open("w", encoding="utf-8") as handle:
            count = await export_labels(store.pool, handle, since=since)
        tmp.replace(out)
        return count
    finally:
        await store.close()


@review.command("export-labels")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="Only decisions from this UTC date/time on.",
)
@pass_context
def export_labels_command(ctx: CommandContext, out: Path, since: datetime | None) -> None:
    """Write reviewer decisions as JSONL (text, labels, verdict, reviewer, decided_at)."""
    from datetime import UTC

    settings: Settings = ctx.settings
    count = asyncio.run(_export(settings, out, since.replace(tzinfo=UTC) if since else None))
    click.echo(f"wrote {count} labeled examples to {out}")


COMMANDS: list[click.Command] = [review]
