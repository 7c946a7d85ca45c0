"""``modstream bench shadow`` (see :mod:`devtools.bench.shadow`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings


async def _bench(
    settings: Settings,
    shadow_model: Path,
    shadow_policy: Path | None,
    rate: float,
    seconds: float,
    rounds: int,
) -> dict[str, Any]:
    from devtools.bench.shadow import run_shadow_bench
    from devtools.stack import up
    from pipeline.modelstore import ensure_model, load_model_and_policy

    click.echo("starting the local stack (idempotent) ...", err=True)
    await up(settings)
    ensure_model(settings.models_path)
    classifier, policy = load_model_and_policy(settings)
    try:
        return await run_shadow_bench(
            settings,
            classifier,
            policy,
            shadow_model=shadow_model,
            shadow_policy=shadow_policy,
            rate=rate,
            seconds=seconds,
            rounds=rounds,
            report=lambda line: click.echo(line, err=True),
        )
    finally:
        classifier.close()


@bench.command("shadow")
@click.option(
    "--shadow-model",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="Built model folder of the candidate.",
)
@click.option(
    "--shadow-policy",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The candidate's policy (default: the live policy).",
)
@click.option("--rate", default=20.0, show_default=True, help="Posts per second of the load.")
@click.option("--seconds", default=10.0, show_default=True, help="Length of each latency run.")
@click.option("--rounds", default=2, show_default=True, help="Without/with pairs to alternate.")
@pass_context
def bench_shadow(
    ctx: CommandContext,
    shadow_model: Path,
    shadow_policy: Path | None,
    rate: float,
    seconds: float,
    rounds: int,
) -> None:
    """Live ingest → decision latency without and with a shadow candidate, at a fixed load."""
    settings: Settings = ctx.settings
    figures = asyncio.run(_bench(settings, shadow_model, shadow_policy, rate, seconds, rounds))
    click.echo(json.dumps(figures))


COMMANDS: list[click.Command] = []  # attached to the `bench` group above
