"""``modstream audit``: the nightly audit of real-time allow decisions (see
:mod:`replay.audit_sample`), and ``modstream audit estimates``.

A command of its own rather than ``modstream replay --audit``: the audit reads the real-time
stage's stored scores, so it loads no classifier and re-scores nothing, it has no chunks or
checkpoints to resume (a post is audited once, so a rerun simply continues), and it can run on
its own schedule. It reuses the replay's Message Batches client, outage guard, daily batch budget
and progress bar.

Exit codes: 0 done, 1 failed (rerun: audited posts are skipped), 2 usage error.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import click

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.window import parse_option


def _window(since: str | None, until: str | None, hours: float) -> tuple[datetime, datetime]:
    end = parse_option(until, "--until") or datetime.now(UTC)
    start = parse_option(since, "--since") or end - timedelta(hours=hours)
    if start >= end:
        raise click.UsageError("--since must be before --until")
    return start, end


@click.group("audit", invoke_without_command=True)
@click.option("--since", help="Real-time decisions at or after this time (default: the window).")
@click.option("--until", help="Real-time decisions before this time (default: now).")
@click.option("--id-prefix", help="Only posts whose id starts with this (tests, backfills).")
@click.option("--dry-run", is_flag=True, help="Select and count the sample; send nothing.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@pass_context
@click.pass_context
def audit(
    click_ctx: click.Context,
    ctx: CommandContext,
    since: str | None,
    until: str | None,
    id_prefix: str | None,
    dry_run: bool,
    no_progress: bool,
) -> None:
    """Send a score-stratified sample of real-time allow decisions to the frontier model through
    the Message Batches API; a removal becomes a batch decision and a review item (audit).

    The sample is MODSTREAM_AUDIT_RATES per stratum of MODSTREAM_AUDIT_EDGES (about 0.5 % of
    allowed posts by default), picked by a keyed hash of the post id. Prints the report as JSON.
    """
    if click_ctx.invoked_subcommand is not None:
        return
    from modstream.roots.audit import run
    from replay.audit_sample import AuditRequest

    settings = ctx.settings
    start, end = _window(since, until, settings.audit_window_hours)
    request = AuditRequest(
        since=start, until=end, id_prefix=id_prefix, dry_run=dry_run, progress=not no_progress
    )
    report = asyncio.run(run(settings, request))
    click.echo(json.dumps(report, separators=(",", ":"), default=str))


@audit.command("estimates")
@click.option("--since", help="Real-time decisions at or after this time (default: the window).")
@click.option("--until", help="Real-time decisions before this time (default: now).")
@pass_context
def estimates(ctx: CommandContext, since: str | None, until: str | None) -> None:
    """Prevalence of violating posts among allowed ones and the false-negative rate, per day
    and category, with 95 % intervals, from the audits so far (JSON)."""
    from pipeline.store.audit_samples import audit_estimates
    from pipeline.store.pg import PostgresStore

    settings = ctx.settings
    start, end = _window(since, until, settings.audit_window_hours)

    async def read() -> dict[str, object]:
        store = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=2)
        try:
            return await audit_estimates(store.pool, start, end, edges=settings.audit_edges)
        finally:
            await store.close()

    click.echo(json.dumps(asyncio.run(read()), separators=(",", ":")))


COMMANDS: list[click.Command] = [audit]
