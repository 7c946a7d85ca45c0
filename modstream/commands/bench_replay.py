"""``modstream bench replay`` (see :mod:`devtools.bench.replay`)."""

from __future__ import annotations

import asyncio
import json

import click

from modstream.commands.bench import bench
from modstream.commands.context import CommandContext, pass_context


@bench.command("replay")
@click.option(
    "--posts",
    type=click.IntRange(100),
    default=100_000,
    show_default=True,
    help="Posts to seed and replay.",
)
@click.option("--keep", is_flag=True, help="Keep the seeded posts and verdicts afterwards.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--history/--no-history",
    default=True,
    show_default=True,
    help="Seed an earlier allow verdict per post (a nightly replay's usual input); without it "
    "every decision is new and published.",
)
@pass_context
def bench_replay_cmd(
    ctx: CommandContext, posts: int, keep: bool, no_progress: bool, history: bool
) -> None:
    """Replay posts/s end to end (Postgres -> model -> Postgres) / raw classifier posts/s."""
    from devtools.bench.replay import run_replay_bench

    summary = asyncio.run(
        run_replay_bench(
            ctx.settings,
            posts=posts,
            keep=keep,
            progress=not no_progress,
            history=history,
            report=lambda line: click.echo(line, err=True),
        )
    )
    click.echo(json.dumps(summary, separators=(",", ":")))


COMMANDS: list[click.Command] = []  # attached to the `bench` group above
