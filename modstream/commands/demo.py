"""``modstream demo``: stack up, model built, stages started, sample posts streamed, summary."""

from __future__ import annotations

import asyncio
import json

import click
from rich.console import Console

from modstream.commands.context import CommandContext, pass_context


@click.command("demo")
@click.option("--rate", default=40.0, show_default=True, help="Sample posts per second.")
@click.option("--keep-running", is_flag=True, help="Leave Kafka and Postgres running afterwards.")
@pass_context
def demo(ctx: CommandContext, rate: float, keep_running: bool) -> None:
    """Run the whole pipeline on the shipped sample posts with a live view."""
    from devtools.demo.runner import run_demo
    from devtools.stack import down, up
    from pipeline.log import configure_logging
    from pipeline.modelstore import ensure_model

    if rate <= 0:
        raise click.UsageError("--rate must be positive")
    settings = ctx.settings
    configure_logging(
        "warning", settings.log_format
    )  # the live view is the output; stages log to files
    console = Console(stderr=True)
    console.rule("modstream demo")
    asyncio.run(up(settings, echo=lambda line: console.print(line)))
    ensure_model(settings.models_path)
    try:
        summary = asyncio.run(run_demo(settings, rate=rate, console=console))
    finally:
        if not keep_running:
            console.print("stopping the local stack (use --keep-running to keep it)")
            down(settings, echo=lambda line: console.print(line))
    console.rule("summary")
    click.echo(json.dumps(summary))
    if summary["decided_posts"] < summary["posts"]:
        raise click.ClickException(
            f"only {summary['decided_posts']} of {summary['posts']} posts got a verdict; "
            f"see the stage logs in {summary['logs']}"
        )


COMMANDS: list[click.Command] = [demo]
