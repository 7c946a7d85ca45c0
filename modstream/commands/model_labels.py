"""``modstream model export-labels``: the system's decisions as teacher labels (JSONL)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import click

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.model import model
from pipeline.config import Settings


async def _export(
    settings: Settings, out: Path, since: datetime | None, include_simulated: bool
) -> dict[str, int]:
    from pipeline.store.pg import PostgresStore
    from pipeline.store.teacher_labels import export_teacher_labels

    store = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=2)
    try:
        partial = out.with_name(out.name + ".partial")
        with partial.open("w", encoding="utf-8") as handle:
            counts = await export_teacher_labels(
                store.pool, handle, since=since, include_simulated=include_simulated
            )
        partial.replace(out)
        return counts
    finally:
        await store.close()


@model.command("export-labels")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--since", type=click.DateTime(), default=None, help="Decisions at or after (UTC if no zone)."
)
@click.option(
    "--include-simulated",
    is_flag=True,
    help="Also export answers from the API simulator (marked; training still skips them).",
)
@pass_context
def export_labels(
    ctx: CommandContext, out: Path, since: datetime | None, include_simulated: bool
) -> None:
    """Reviewer decisions (provenance human) and frontier verdicts (provenance frontier) as
    teacher labels for `modstream model train --with-labels FILE`."""
    counts = asyncio.run(_export(ctx.settings, out, since, include_simulated))
    click.echo(json.dumps({"out": str(out), **counts}))
