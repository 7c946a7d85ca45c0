"""``modstream replay``: parse the options, run it (:func:`modstream.roots.replay.run`), print
the report.

Exit codes: 0 the run succeeded, 1 it failed (resumable: ``--resume RUN_ID`` or rerun the same
command), 2 usage error.
"""

from __future__ import annotations

import asyncio
import json

import click

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.window import parse_option
from replay.selection import parse_shard


@click.command("replay")
@click.option(
    "--since",
    help="Posts ingested at or after this time: ISO 8601 (UTC if no zone), or 24h or 7d ago.",
)
@click.option("--until", help="Posts ingested before this time: ISO 8601, now, or 1h ago.")
@click.option(
    "--since-last-run",
    is_flag=True,
    help="Posts stored since the last successful run of the same scope.",
)
@click.option(
    "--stale",
    is_flag=True,
    help="Posts whose current verdict came from another model or policy version.",
)
@click.option("--category", help="Posts whose current verdict flagged this category (e.g. toxic).")
@click.option(
    "--sample",
    type=click.FloatRange(0, 1, min_open=True),
    help="Deterministic sample share, e.g. 0.1.",
)
@click.option("--shard", help="Only shard i of n by hash of post id, e.g. 3/8 (default: settings).")
@click.option("--id-prefix", help="Only posts whose id starts with this (backfills, tests).")
@click.option(
    "--dry-run", is_flag=True, help="Report what would change; write and publish nothing."
)
@click.option("--resume", "resume", metavar="RUN_ID", help="Resume this unfinished run.")
@click.option(
    "--new-run",
    is_flag=True,
    help="Start afresh even if an unfinished run with these options exists.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON line only.")
@pass_context
def replay_cmd(
    ctx: CommandContext,
    since: str | None,
    until: str | None,
    since_last_run: bool,
    stale: bool,
    category: str | None,
    sample: float | None,
    shard: str | None,
    id_prefix: str | None,
    dry_run: bool,
    resume: str | None,
    new_run: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Re-score stored posts with the current classifier and policy; write changed verdicts.

    Resumable: a killed run continues from its last checkpoint when the same command runs
    again (or with --resume RUN_ID). Borderline posts go to the Message Batches API.
    """
    from modstream.roots.replay import run
    from replay.report import render_text
    from replay.request import ReplayRequest

    start, end = parse_option(since, "--since"), parse_option(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.UsageError("--since must be before --until")
    if since_last_run and start is not None:
        raise click.UsageError("use either --since or --since-last-run, not both")
    if resume is not None and new_run:
        raise click.UsageError("use either --resume or --new-run, not both")
    if resume is not None and dry_run:
        raise click.UsageError("--dry-run starts no run, so it cannot --resume one")
    shard_index, shard_count = 0, 1
    if shard is not None:
        try:
            shard_index, shard_count = parse_shard(shard)
        except ValueError as exc:
            raise click.UsageError(f"--shard: {exc}") from None
    settings = ctx.settings
    if category is not None and not category.strip():
        raise click.UsageError("--category must not be empty")
    request = ReplayRequest(
        since=start,
        until=end,
        since_last_run=since_last_run,
        stale=stale,
        category=category,
        sample=sample,
        shard_index=shard_index,
        shard_count=shard_count,
        id_prefix=id_prefix,
        dry_run=dry_run,
        resume=resume,
        new_run=new_run,
        progress=not no_progress and not as_json,
    )
    report = asyncio.run(run(settings, request))
    if as_json:
        click.echo(json.dumps(report, separators=(",", ":"), default=str))
    else:
        click.echo(render_text(report))
        click.echo(json.dumps(report, separators=(",", ":"), default=str))


COMMANDS: list[click.Command] = [replay_cmd]
