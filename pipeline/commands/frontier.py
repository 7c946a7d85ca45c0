"""``modstream frontier-sim`` (the Anthropic API simulator) and ``modstream run frontier``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from pipeline.commands.context import CommandContext, pass_context
from pipeline.commands.run import install_stop_signals, run
from pipeline.config import Settings
from pipeline.log import get_logger

log = get_logger(__name__)


async def _run_frontier(settings: Settings) -> None:
    from pipeline.availability import OutageInterruptedError
    from pipeline.frontier.app import build_frontier

    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        async with build_frontier(settings, stop) as (stage, ops):
            log.info(
                "frontier.ready",
                metrics_port=ops.port,
                model=settings.anthropic_model,
                simulator=settings.anthropic_base_url is not None,
            )
            await stage.run(stop)
    except OutageInterruptedError as exc:
        # SIGTERM while the broker was unreachable at start: nothing was consumed or committed.
        log.warning("frontier.stopped_during_outage", error=str(exc))


@run.command("frontier")
@pass_context
def frontier(ctx: CommandContext) -> None:
    """Decide borderline posts with the frontier model within the SLA (fallback otherwise)."""
    asyncio.run(_run_frontier(ctx.settings))


async def _serve(config: Any, host: str, port: int) -> None:
    from pipeline.frontier.sim import BANNER, SimulatorServer

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

    from pipeline.frontier.sim import SimConfig
    from pipeline.frontier.sim.server import load_config_file

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


@click.group("frontier")
def frontier_tools() -> None:
    """Tools for the frontier stage (the stage itself runs as ``modstream run frontier``)."""


SIMULATOR_NOTE = (
    "SIMULATOR RUN: these figures come from the bundled keyword simulator, not a model. They "
    "show how the pipeline (prompt, validation, guard, review) handles the corpus and say "
    "nothing about how a real model resists prompt injection."
)


@frontier_tools.command("eval-injection")
@click.option(
    "--corpus",
    "corpus_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSONL corpus (default: the shipped pipeline/frontier/injection_corpus.jsonl).",
)
@pass_context
def eval_injection(ctx: CommandContext, corpus_path: Path | None) -> None:
    """Run the prompt-injection corpus through the frontier decide path and verdict guard.

    Uses the real Anthropic API when MODSTREAM_ANTHROPIC_API_KEY is set and
    MODSTREAM_ANTHROPIC_BASE_URL is not; otherwise starts the SIMULATOR on a free port. Prints a
    table per attack category; the last line is JSON (posts, injection_followed, accuracy,
    reviewed, simulator, ...).
    """
    from pipeline.frontier import injection_eval as ev
    from pipeline.modelstore import ensure_model, load_model_and_policy

    try:
        cases = ev.load_corpus(corpus_path or ev.CORPUS_PATH)
    except ev.CorpusError as exc:
        raise click.BadParameter(str(exc), param_hint="--corpus") from None
    settings = ctx.settings
    target = "the Anthropic API" if ev.uses_real_api(settings) else "the SIMULATOR (not a model)"
    click.echo(f"eval-injection: {len(cases)} posts against {target}", err=True)
    ensure_model(settings.models_path)
    classifier, policy = load_model_and_policy(settings)
    try:
        results, simulator, model = asyncio.run(ev.run_eval(settings, cases, classifier, policy))
    finally:
        classifier.close()
    click.echo(ev.render(ev.table(results)))
    if simulator:
        click.echo(SIMULATOR_NOTE)
    figures = ev.summary(results, simulator=simulator, model=model)
    click.echo(json.dumps(figures, separators=(",", ":")))
    if figures["fallbacks"] == figures["posts"]:
        raise click.ClickException("no post got an answer from the provider (all fell back)")


COMMANDS: list[click.Command] = [frontier_sim, frontier_tools]
