"""``modstream bench realtime`` (see :mod:`devtools.bench.realtime`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings


async def _bench(
    settings: Settings, posts: int, naive_posts: int, latency_s: float
) -> dict[str, Any]:
    from devtools.bench.realtime import run_realtime_bench
    from devtools.stack import up
    from pipeline.modelstore import ensure_model, load_model, load_model_and_policy

    click.echo("starting the local stack (idempotent) ...", err=True)
    await up(settings)
    ensure_model(settings.models_path)
    classifier, policy = load_model_and_policy(settings)
    spinning = load_model(settings.model_copy(update={"onnx_spin_wait": True}))
    try:
        return await run_realtime_bench(
            settings,
            classifier,
            policy,
            spinning=spinning,
            posts=posts,
            naive_posts=naive_posts,
            latency_seconds=latency_s,
            report=lambda line: click.echo(line, err=True),
        )
    finally:
        classifier.close()
        spinning.close()


@bench.command("realtime")
@click.option("--posts", default=4000, show_default=True, help="Backlog size for max throughput.")
@click.option("--naive-posts", default=400, show_default=True, help="Posts for the naive consumer.")
@click.option(
    "--latency-seconds", default=20.0, show_default=True, help="Length of the half-load run."
)
@pass_context
def bench_realtime(
    ctx: CommandContext, posts: int, naive_posts: int, latency_seconds: float
) -> None:
    """Pipeline throughput vs raw classifier vs naive consumer, and latency at half load."""
    settings: Settings = ctx.settings
    figures = asyncio.run(_bench(settings, posts, naive_posts, latency_seconds))
    click.echo(json.dumps(figures))


COMMANDS: list[click.Command] = []  # attached to the `bench` group above
