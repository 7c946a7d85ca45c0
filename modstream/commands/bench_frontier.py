"""``modstream bench frontier``: SLA attainment of the frontier decide path (simulated API)."""

from __future__ import annotations

import asyncio
import json

import click
from pydantic import SecretStr

from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context


@bench.command("frontier")
@click.option("--posts", type=click.IntRange(1), default=2000, show_default=True)
@click.option(
    "--rate", type=click.FloatRange(1), default=40.0, show_default=True, help="Posts per second."
)
@click.option(
    "--queue-delay",
    type=click.FloatRange(0, 4),
    default=0.3,
    show_default=True,
    help="Most seconds a post waited before the stage (ingested_at in the past).",
)
@click.option("--latency-p50", type=click.FloatRange(0), default=1.5, show_default=True)
@click.option("--latency-p99", type=click.FloatRange(0), default=6.0, show_default=True)
@click.option("--rate-429", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Provider calls in flight.",
)
@click.option(
    "--rps", type=click.FloatRange(1), default=100.0, show_default=True, help="Provider rate limit."
)
@click.option("--seed", type=int, default=7, show_default=True)
@pass_context
def bench_frontier(
    ctx: CommandContext,
    posts: int,
    rate: float,
    queue_delay: float,
    latency_p50: float,
    latency_p99: float,
    rate_429: float,
    concurrency: int,
    rps: float,
    seed: int,
) -> None:
    """Decide borderline posts against the SIMULATOR (p50 1.5 s, p99 6 s, 5% 429) by default.

    The last line is JSON: within_sla, decided, frontier_share, usd_per_1000, ...
    """
    from devtools.bench.frontier import BenchConfig, run_bench

    settings = ctx.settings
    key = settings.anthropic_api_key.get_secret_value() or "simulator"
    settings = settings.model_copy(
        update={
            "anthropic_api_key": SecretStr(key),
            "frontier_concurrency": concurrency,
            "frontier_max_in_flight": max(settings.frontier_max_in_flight, concurrency),
            "frontier_rate_limit_rps": rps,
            "frontier_rate_limit_burst": max(1, int(rps)),
        }
    )
    config = BenchConfig(
        posts=posts,
        rate=rate,
        queue_delay_s=queue_delay,
        latency_p50_s=latency_p50,
        latency_p99_s=latency_p99,
        rate_429=rate_429,
        seed=seed,
    )
    click.echo(f"frontier bench: {posts} posts at {rate}/s against the simulator ...", err=True)
    summary = asyncio.run(run_bench(settings, config))
    click.echo(json.dumps(summary, separators=(",", ":")))


COMMANDS: list[click.Command] = []
