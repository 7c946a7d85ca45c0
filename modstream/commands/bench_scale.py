"""``modstream bench scale`` (see :mod:`devtools.bench.scale`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings


async def _bench(settings: Settings, config: Any) -> dict[str, Any]:
    from devtools.bench.scale import run_scale_bench
    from devtools.stack import up
    from pipeline.modelstore import ensure_model

    click.echo("starting the local stack (idempotent) ...", err=True)
    await up(settings, echo=lambda line: click.echo(line, err=True))
    ensure_model(settings.models_path)
    return await run_scale_bench(settings, config, lambda line: click.echo(line, err=True))


@bench.command("scale")
@click.option("--posts", type=click.IntRange(50), default=6_000, show_default=True,
              help="Backlog drained by each process count.")  # fmt: skip
@click.option("--max-processes", type=click.IntRange(1, 6), default=3, show_default=True,
              help="Measure 1, 2, ... this many real-time processes.")  # fmt: skip
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="MODSTREAM_ONNX_THREADS of each process.")  # fmt: skip
@click.option("--partitions", type=click.IntRange(1), default=6, show_default=True,
              help="Partitions of the bench's ingest topic.")  # fmt: skip
@pass_context
def bench_scale(
    ctx: CommandContext, posts: int, max_processes: int, threads: int, partitions: int
) -> None:
    """Drain throughput and consumer lag with 1..N real-time processes in one group."""
    from devtools.bench.scale import ScaleBenchConfig

    if max_processes > partitions:
        raise click.BadParameter("more processes than partitions would leave some idle")
    config = ScaleBenchConfig(
        posts=posts, max_processes=max_processes, threads=threads, partitions=partitions
    )
    figures = asyncio.run(_bench(ctx.settings, config))
    click.echo(json.dumps(figures))
