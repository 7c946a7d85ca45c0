"""``modstream bench soak``: sustained traffic with faults; last line is a JSON of figures."""

from __future__ import annotations

import asyncio
import json

import click

from devtools.soak.runner import SoakPlan, run_soak
from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings


@bench.command("soak")
@click.option("--minutes", type=click.FloatRange(0.5), default=10.0, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(1),
    default=None,
    help="Posts per second. Default: half the classifier's measured capacity.",
)
@click.option(
    "--outage-seconds",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="How long Postgres and the broker stay down before they are started again.",
)
@click.option(
    "--burst-seconds",
    type=click.FloatRange(1),
    default=60.0,
    show_default=True,
    help="Length of the simulator's 529 burst (at most 15 % of the run).",
)
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=1,
    show_default=True,
    help="Kafka nodes of the private stack. With 3, topics are replicated and the Kafka fault "
    "kills the leader of the busiest ingest partition instead of the only broker.",
)
@pass_context
def bench_soak(
    ctx: CommandContext,
    minutes: float,
    rate: float | None,
    outage_seconds: float,
    burst_seconds: float,
    brokers: int,
) -> None:
    """Real-time and frontier stages under steady traffic (1 % hostile) while Postgres and the
    broker are killed and restarted and the provider answers 529: nothing may be lost.

    Runs on a private stack (its own ports, under MODSTREAM_STATE_DIR/soak), against the
    Anthropic API SIMULATOR.
    """
    settings: Settings = ctx.settings
    plan = SoakPlan(
        minutes=minutes,
        rate=rate,
        outage_seconds=outage_seconds,
        burst_seconds=burst_seconds,
        brokers=brokers,
    )
    figures = asyncio.run(run_soak(settings, plan, lambda line: click.echo(line, err=True)))
    click.echo(json.dumps(figures))


COMMANDS: list[click.Command] = []  # attached to the `bench` group above
