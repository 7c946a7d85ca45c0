"""``modstream frontier-sim`` (the Anthropic API simulator) and ``modstream run frontier``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import click
from pydantic import SecretStr

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.run import install_stop_signals, run
from pipeline.config import Settings
from pipeline.log import get_logger

log = get_logger(__name__)


async def _run_frontier(settings: Settings) -> None:
    from modstream.roots.frontier import build_frontier
    from pipeline.availability import OutageInterruptedError

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


@asynccontextmanager
async def _endpoint(settings: Settings) -> AsyncIterator[tuple[Settings, bool]]:
    """Settings pointing at the endpoint to use, and whether it is the simulator."""
    from pipeline.frontier.injection_eval import uses_real_api

    if uses_real_api(settings):
        yield settings, False
        return
    try:
        from devtools.sim import SimConfig, SimulatorServer
    except ModuleNotFoundError:
        raise click.UsageError(
            "no MODSTREAM_ANTHROPIC_API_KEY is set and the simulator (devtools) is not installed: "
            "set a key to evaluate the real API, or install modstream with its developer tools"
        ) from None

    async with SimulatorServer(SimConfig(seed=7)) as server:  # port 0: a free port
        yield (
            settings.model_copy(
                update={"anthropic_base_url": server.url, "anthropic_api_key": SecretStr("sim")}
            ),
            True,
        )


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
        results, simulator, model = asyncio.run(
            ev.run_eval(settings, cases, classifier, policy, endpoint=_endpoint)
        )
    finally:
        classifier.close()
    click.echo(ev.render(ev.table(results)))
    if simulator:
        click.echo(SIMULATOR_NOTE)
    figures = ev.summary(results, simulator=simulator, model=model)
    click.echo(json.dumps(figures, separators=(",", ":")))
    if figures["fallbacks"] == figures["posts"]:
        raise click.ClickException("no post got an answer from the provider (all fell back)")


COMMANDS: list[click.Command] = [frontier_tools]
