"""``modstream frontier-sim``: the Anthropic API SIMULATOR (developer tooling, see devtools.sim)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from modstream.commands.run import install_stop_signals


async def _serve(config: Any, host: str, port: int) -> None:
    from devtools.sim import BANNER, SimulatorServer

    stop = asyncio.Event()
    install_stop_signals(stop)
    async with SimulatorServer(config, host=host, port=port) as server:
        click.echo(BANNER, err=True)
        click.echo(f"simulator listening on {server.url}", err=True)
        await stop.wait()


@click.command("frontier-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", type=click.IntRange(0, 65535), default=28080, show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="JSON file of simulator settings (see docs/frontier.md).",
)
@click.option("--latency-p50", type=click.FloatRange(0), help="Median latency, seconds.")
@click.option("--latency-p99", type=click.FloatRange(0), help="99th percentile latency, seconds.")
@click.option("--rate-429", type=click.FloatRange(0, 1), help="Share of 429 rate-limit answers.")
@click.option("--retry-after", type=click.FloatRange(0), help="retry-after seconds on a 429.")
@click.option("--rate-529", type=click.FloatRange(0, 1), help="Share of 529 overloaded answers.")
@click.option("--rate-500", type=click.FloatRange(0, 1), help="Share of 500 answers.")
@click.option("--rate-hang", type=click.FloatRange(0, 1), help="Share of requests never answered.")
@click.option(
    "--rate-malformed", type=click.FloatRange(0, 1), help="Share of malformed tool output."
)
@click.option("--rate-refusal", type=click.FloatRange(0, 1), help="Share of refusals.")
@click.option("--batch-seconds", type=click.FloatRange(0), help="Processing time of a batch.")
@click.option("--seed", type=int, help="Seed for reproducible fault and latency draws.")
def frontier_sim(
    host: str,
    port: int,
    config_path: Path | None,
    latency_p50: float | None,
    latency_p99: float | None,
    rate_429: float | None,
    retry_after: float | None,
    rate_529: float | None,
    rate_500: float | None,
    rate_hang: float | None,
    rate_malformed: float | None,
    rate_refusal: float | None,
    batch_seconds: float | None,
    seed: int | None,
) -> None:
    """Run the Anthropic API SIMULATOR (not a model) for local runs, tests and benchmarks."""
    from pydantic import ValidationError

    from devtools.sim import SimConfig
    from devtools.sim.server import load_config_file

    values: dict[str, Any] = load_config_file(str(config_path)) if config_path else {}
    flags = {
        "latency_p50_s": latency_p50,
        "latency_p99_s": latency_p99,
        "rate_429": rate_429,
        "retry_after_s": retry_after,
        "rate_529": rate_529,
        "rate_500": rate_500,
        "rate_hang": rate_hang,
        "rate_malformed": rate_malformed,
        "rate_refusal": rate_refusal,
        "batch_processing_s": batch_seconds,
        "seed": seed,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        config = SimConfig.model_validate(values)
    except ValidationError as exc:
        raise click.UsageError(f"invalid simulator settings: {exc}") from None
    click.echo(json.dumps(config.model_dump()), err=True)
    asyncio.run(_serve(config, host, port))


COMMANDS: list[click.Command] = [frontier_sim]
