"""``modstream up | down | migrate | status``: the local stack and the database schema."""

from __future__ import annotations

import asyncio
import time

import click

from pipeline.commands.context import CommandContext, pass_context
from pipeline.errors import StackError
from pipeline.stack import manager
from pipeline.store.migrate import migrate as apply_migrations


@click.command()
@pass_context
def up(ctx: CommandContext) -> None:
    """Start Kafka (KRaft) and Postgres locally, create topics, apply migrations. Idempotent."""
    started = time.monotonic()
    result = asyncio.run(manager.up(ctx.settings, echo=click.echo))
    for line in result.lines():
        click.echo(line)
    what = ", ".join(result.started) if result.started else "nothing (already running)"
    click.echo(f"started {what} in {time.monotonic() - started:.1f}s")


@click.command()
@pass_context
def down(ctx: CommandContext) -> None:
    """Stop the local Kafka broker and Postgres server; leaves no process behind."""
    manager.down(ctx.settings, echo=click.echo)


@click.command()
@pass_context
def migrate(ctx: CommandContext) -> None:
    """Apply pending SQL migrations to MODSTREAM_POSTGRES_DSN."""
    applied = asyncio.run(apply_migrations(ctx.settings.postgres_dsn.get_secret_value()))
    click.echo(f"applied {', '.join(applied)}" if applied else "up to date")


@click.command()
@pass_context
def status(ctx: CommandContext) -> None:
    """Show whether the local services run, and where. Exit 1 if one is stopped."""
    result = manager.status(ctx.settings)
    for line in result.lines():
        click.echo(line)
    stopped = [svc.name for svc in (result.kafka, result.postgres) if not svc.running]
    if stopped:
        raise StackError(f"{' and '.join(stopped)} not running; start with `modstream up`")


COMMANDS: list[click.Command] = [up, down, migrate, status]
