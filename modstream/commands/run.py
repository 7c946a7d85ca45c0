"""``modstream run <stage>``: long-running stream processors."""

from __future__ import annotations

import asyncio
import signal

import click

from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings
from pipeline.log import get_logger

log = get_logger(__name__)


@click.group()
def run() -> None:
    """Run a stream-processing stage until SIGTERM/SIGINT (finishes the batch in hand)."""


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop``; stages then finish their batch, commit and exit."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def _run_realtime(settings: Settings) -> None:
    from modstream.roots.realtime import build_realtime
    from pipeline.availability import OutageInterruptedError

    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        async with build_realtime(settings, stop) as engine:
            await engine.run(stop)
    except OutageInterruptedError as exc:
        log.warning("realtime.stopped_during_outage", error=str(exc))


@run.command("realtime")
@pass_context
def realtime(ctx: CommandContext) -> None:
    """Classify every post on the ingest topic in micro-batches and publish decisions."""
    settings: Settings = ctx.settings
    asyncio.run(_run_realtime(settings))


COMMANDS: list[click.Command] = [run]
