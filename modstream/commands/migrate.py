"""``modstream migrate``: apply the forward-only SQL migrations (a runtime command: k8s runs it)."""

from __future__ import annotations

import asyncio

import click

from modstream.commands.context import CommandContext, pass_context
from pipeline.store.migrate import migrate as apply_migrations


@click.command()
@pass_context
def migrate(ctx: CommandContext) -> None:
    """Apply pending SQL migrations to MODSTREAM_POSTGRES_DSN."""
    applied = asyncio.run(apply_migrations(ctx.settings.postgres_dsn.get_secret_value()))
    click.echo(f"applied {', '.join(applied)}" if applied else "up to date")


COMMANDS: list[click.Command] = [migrate]
