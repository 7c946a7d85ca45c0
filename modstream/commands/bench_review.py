"""``modstream bench review`` (see :mod:`devtools.bench.review`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings


async def _bench(settings: Settings, *, think_ms: float, **options: Any) -> dict[str, Any]:
    """Start the stack, then run the bench with the command's ``options`` (its keyword names)."""
    from devtools.bench.review import run_review_bench
    from devtools.stack import up

    click.echo("starting the local stack (idempotent) ...", err=True)
    await up(settings, echo=lambda line: click.echo(line, err=True))
    return await run_review_bench(
        settings,
        think_s=think_ms / 1000,
        report=lambda line: click.echo(line, err=True),
        **options,
    )


@bench.command("review")
@click.option(
    "--pending", type=click.IntRange(1), default=1_000_000, show_default=True,
    help="Pending items seeded before the reviewers start.",
)  # fmt: skip
@click.option(
    "--reviewers", type=click.IntRange(1, 200), default=20, show_default=True,
    help="Concurrent reviewers claiming and deciding over HTTP.",
)  # fmt: skip
@click.option(
    "--seconds", type=click.FloatRange(1), default=30.0, show_default=True,
    help="How long the reviewers work.",
)  # fmt: skip
@click.option(
    "--think-ms", type=click.FloatRange(0), default=0.0, show_default=True,
    help="Pause between a reviewer's claim and decision (0: back to back, the worst case).",
)  # fmt: skip
@click.option(
    "--warmup-s", type=click.FloatRange(0), default=5.0, show_default=True,
    help="Seconds at the start kept out of the percentiles (reported as *_with_warmup).",
)  # fmt: skip
@click.option("--keep", is_flag=True, help="Leave the seeded items and accounts in place.")
@pass_context
def bench_review(ctx: CommandContext, /, **options: Any) -> None:
    """Review queue under a backlog: claim, decide and queue-page latency, double claims."""
    settings: Settings = ctx.settings
    figures = asyncio.run(_bench(settings, **options))
    click.echo(json.dumps(figures))


COMMANDS: list[click.Command] = []  # attached to the `bench` group above
