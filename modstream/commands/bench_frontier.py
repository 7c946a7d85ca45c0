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
@click.option(
    "--designs",
    default="short,examples,examples-1h,multi-4",
    show_default=True,
    help="Comma-separated designs, run in turn: short, examples, examples-1h, multi-K.",
)
@click.option(
    "--output-token-ms",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Simulated decode time per output token, added to the drawn latency.",
)
@click.option(
    "--linger",
    type=click.FloatRange(0, 2),
    default=0.25,
    show_default=True,
    help="multi-K: most seconds a post waits for others to share its call.",
)
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
    designs: str,
    output_token_ms: float,
    linger: float,
) -> None:
    """Decide borderline posts against the SIMULATOR (p50 1.5 s, p99 6 s, 5% 429) by default,
    once per design (prompt, cache lifetime, posts per call), side by side.

    One line per design, then the last line, JSON: within_sla, decided, frontier_share,
    usd_per_1000, cache_hit_rate, ... of the ``examples`` design, and ``designs`` with every
    design's figures.
    """
    from devtools.bench.frontier import BenchConfig, run_bench
    from devtools.bench.frontier_designs import design

    names = tuple(n.strip() for n in designs.split(",") if n.strip())
    try:
        for name in names:
            design(name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

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
        designs=names,
        output_token_latency_s=output_token_ms / 1000.0,
        linger_s=linger,
    )
    click.echo(
        f"frontier bench: {posts} posts at {rate}/s per design ({', '.join(names)}) "
        "against the simulator ...",
        err=True,
    )
    summary = asyncio.run(run_bench(settings, config))
    click.echo(
        f"{'design':<12} {'within_sla':>10} {'frontier':>8} {'usd/1000':>9} {'usd/1000f':>9} "
        f"{'cache_hit':>9} "
        f"{'p50_s':>6} {'p99_s':>6} {'agree':>6} {'label_acc':>9}"
    )
    for name, d in summary["designs"].items():
        click.echo(
            f"{name:<12} {d['within_sla']:>10} {d['frontier_share']:>8} {d['usd_per_1000']:>9} "
            f"{d['usd_per_1000_frontier']:>9} "
            f"{d['cache_hit_rate']:>9} {d['ingest_to_decision_p50_s']:>6} "
            f"{d['ingest_to_decision_p99_s']:>6} {d.get('agreement', '-')!s:>6} "
            f"{d['label_accuracy']!s:>9}"
        )
    click.echo(json.dumps(summary, separators=(",", ":")))


COMMANDS: list[click.Command] = []
