"""``modstream bench cost`` (see :mod:`devtools.bench.cost`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings


async def _bench(settings: Settings, config: Any) -> dict[str, Any]:
    from devtools.bench.cost import run_cost_bench
    from devtools.stack import up

    click.echo("starting the local stack (idempotent) ...", err=True)
    await up(settings, echo=lambda line: click.echo(line, err=True))
    return await run_cost_bench(settings, config, lambda line: click.echo(line, err=True))


@bench.command("cost")
@click.option("--posts", type=click.IntRange(100), default=5_000, show_default=True)
@click.option(
    "--harmful-share", type=click.FloatRange(0, 1), default=0.10, show_default=True,
    help="Share of harmful posts in the stream (the prior the policy assumes).",
)  # fmt: skip
@click.option("--rate", type=click.FloatRange(1), default=40.0, show_default=True,
              help="Posts per second produced.")  # fmt: skip
@click.option(
    "--review-seconds", type=click.FloatRange(0), default=60.0, show_default=True,
    help="Modelled reviewer handling time per review item (a bench has no reviewers).",
)  # fmt: skip
@click.option(
    "--outage-seconds", type=click.FloatRange(0), default=10.0, show_default=True,
    help="Stop the provider simulator this long halfway through the stream (0: no outage); the "
    "fallbacks it causes are what the nightly replay sends to Message Batches.",
)  # fmt: skip
@click.option("--seed", type=int, default=7, show_default=True)
@pass_context
def bench_cost(
    ctx: CommandContext,
    posts: int,
    harmful_share: float,
    rate: float,
    review_seconds: float,
    outage_seconds: float,
    seed: int,
) -> None:
    """The hybrid's cost per mode vs pure frontier: stream, frontier, replay, `modstream cost`."""
    from devtools.bench.cost import CostBenchConfig

    config = CostBenchConfig(
        posts=posts,
        harmful_share=harmful_share,
        rate=rate,
        review_seconds=review_seconds,
        outage_s=outage_seconds,
        seed=seed,
    )
    figures = asyncio.run(_bench(ctx.settings, config))
    click.echo(json.dumps(figures))
