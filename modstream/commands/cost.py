"""``modstream cost``: what moderation cost per mode, the counterfactuals and a projection."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.window import parse_window
from pipeline.config import Settings


async def _document(
    settings: Settings,
    since: datetime,
    until: datetime,
    posts_per_day: float | None,
    tokens_per_day: float | None,
) -> dict[str, Any]:
    from pipeline.cost.config import CostConfig
    from pipeline.cost.document import cost_document
    from pipeline.store.pg import PostgresStore

    store = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=2)
    try:
        return await cost_document(
            store.pool,
            CostConfig.from_settings(settings),
            since=since,
            until=until,
            posts_per_day=posts_per_day,
            tokens_per_day=tokens_per_day,
        )
    finally:
        await store.close()


@click.command("cost")
@click.option("--since", default="24h", show_default=True, help="Start: 24h, 7d, or ISO time.")
@click.option("--until", default="now", show_default=True, help="End: now, 1h, or ISO time.")
@click.option(
    "--posts-per-day", type=click.FloatRange(min=0), help="Project the month at this volume."
)
@click.option(
    "--tokens-per-day",
    type=click.FloatRange(min=0),
    help="Project at this many tokens of post text a day (e.g. 1e9).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw cost per mode over time and the counterfactuals (.png or .svg).",
)
@pass_context
def cost(
    ctx: CommandContext,
    since: str,
    until: str,
    posts_per_day: float | None,
    tokens_per_day: float | None,
    as_json: bool,
    chart: Path | None,
) -> None:
    """What moderation cost per mode in a window, without the hybrid, and at a volume.

    Reads the verdict history's cost ledger, the decided review items and the streamed-analysis
    log. Prices come from the settings (MODSTREAM_FRONTIER_PRICE_*, MODSTREAM_COST_*).
    """
    if posts_per_day is not None and tokens_per_day is not None:
        raise click.UsageError("give --posts-per-day or --tokens-per-day, not both")
    if chart is not None and chart.suffix.lower() not in {".png", ".svg"}:
        raise click.BadParameter("the chart file must end in .png or .svg", param_hint="--chart")
    if chart is not None and not chart.parent.is_dir():
        raise click.BadParameter(
            f"{chart.parent} is not a directory; create it or write the chart elsewhere",
            param_hint="--chart",
        )
    start, end = parse_window(since, until, now=datetime.now(UTC))
    try:
        doc = asyncio.run(_document(ctx.settings, start, end, posts_per_day, tokens_per_day))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if chart is not None:
        from modstream.commands.cost_chart import draw

        try:
            draw(doc, chart)
        except OSError as exc:
            raise click.ClickException(f"cannot write the chart to {chart}: {exc}") from None
    if as_json:
        click.echo(json.dumps(doc, sort_keys=True))
        return
    from modstream.commands.cost_table import render

    render(doc)
    if chart is not None:
        click.echo(f"chart written to {chart}", err=True)


COMMANDS = [cost]
