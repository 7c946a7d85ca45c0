"""``modstream up | down | migrate | status``: the local stack and the database schema."""

from __future__ import annotations

import asyncio
import time

import click

from devtools.stack import manager
from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings, load_settings
from pipeline.errors import StackError

brokers_option = click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="Kafka nodes of the local cluster (overrides MODSTREAM_KAFKA_BROKERS; 3 gives "
    "replicated topics). Pass the same count to `down` and `status`, or set the variable.",
)


def _settings(ctx: CommandContext, brokers: int | None) -> Settings:
    if brokers is None or brokers == ctx.settings.kafka_brokers:
        return ctx.settings
    return load_settings(kafka_brokers=brokers)


@click.command()
@brokers_option
@pass_context
def up(ctx: CommandContext, brokers: int | None) -> None:
    """Start Kafka (KRaft) and Postgres locally, create topics, apply migrations. Idempotent."""
    started = time.monotonic()
    result = asyncio.run(manager.up(_settings(ctx, brokers), echo=click.echo))
    for line in result.lines():
        click.echo(line)
    what = ", ".join(result.started) if result.started else "nothing (already running)"
    click.echo(f"started {what} in {time.monotonic() - started:.1f}s")


@click.command()
@brokers_option
@pass_context
def down(ctx: CommandContext, brokers: int | None) -> None:
    """Stop the local Kafka node(s) and Postgres server; leaves no process behind.

    Every Kafka process under the state dir is stopped, whatever broker count it was started with.
    """
    manager.down(_settings(ctx, brokers), echo=click.echo)


@click.command()
@brokers_option
@pass_context
def status(ctx: CommandContext, brokers: int | None) -> None:
    """Show whether the local services run, and where. Exit 1 if one is stopped."""
    result = manager.status(_settings(ctx, brokers))
    for line in result.lines():
        click.echo(line)
    services = (*(result.kafka_nodes or [result.kafka]), result.postgres)
    stopped = [svc.name for svc in services if not svc.running]
    if stopped:
        raise StackError(f"{' and '.join(stopped)} not running; start with `modstream up`")


COMMANDS: list[click.Command] = [up, down, status]
