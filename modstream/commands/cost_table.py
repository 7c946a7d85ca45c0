"""The people's view of a cost report document (rich tables on stdout)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _usd(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"${value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f} %"


def _signed(value: float | None) -> str:
    return (
        "n/a (not measured)" if value is None else f"{'+' if value >= 0 else '-'}${abs(value):,.2f}"
    )


def render(doc: dict[str, Any], console: Console | None = None) -> None:
    out = console or Console()
    window, prices, totals = doc["window"], doc["prices"], doc["totals"]
    out.print(
        f"[bold]Moderation cost[/bold] {window['since']} → {window['until']} "
        f"({window['days']} days, whole UTC hours): {doc['posts']:,} posts"
    )
    out.print(
        f"prices: {prices['model']} ${prices['input_per_mtok']}/${prices['output_per_mtok']} per "
        f"MTok in/out, cache write ${prices['cache_write_per_mtok']}, read "
        f"${prices['cache_read_per_mtok']}, batch x{prices['batch_multiplier']} "
        f"(as of {prices['as_of']}, {prices['source']}); classifier "
        f"{prices['compute_device']} ${prices['compute_usd_per_hour']}/h; reviewer "
        f"${prices['reviewer_usd_per_hour']}/h"
    )
    modes = Table(title="Per mode")
    for column in ("mode", "posts", "input tok", "cached tok", "cache-write tok", "output tok"):
        modes.add_column(column, justify="right" if column != "mode" else "left")
    for column in ("USD", "USD / 1,000", "share"):
        modes.add_column(column, justify="right")
    for row in doc["modes"]:
        modes.add_row(
            row["mode"],
            f"{row['posts']:,}",
            f"{row['input_tokens']:,}",
            f"{row['cached_tokens']:,}",
            f"{row['cache_write_tokens']:,}",
            f"{row['output_tokens']:,}",
            _usd(row["usd"]),
            _usd(row["usd_per_1000"]),
            _pct(row["share"]),
        )
    out.print(modes)
    out.print(
        f"hybrid (machine) {_usd(totals['machine_usd'])} = "
        f"{_usd(totals['usd_per_1000_hybrid'])} per 1,000 posts; human review "
        f"{_usd(totals['human_usd'])} = {_usd(totals['usd_per_1000_human'])} per 1,000 posts"
    )
    out.print(
        f"borderline share {_pct(totals['borderline_share'])}, review share "
        f"{_pct(totals['review_share'])}, cache hit rate {_pct(totals['cache_hit_rate'])}"
    )
    counter = doc["counterfactuals"]
    whatif = Table(title="Counterfactuals (same window, machine cost)")
    whatif.add_column("design")
    whatif.add_column("USD", justify="right")
    whatif.add_row("this hybrid", _usd(totals["machine_usd"]))
    whatif.add_row(
        "every post through the frontier in real time", _usd(counter["pure_frontier_usd"])
    )
    whatif.add_row(
        "borderline posts through batch instead", _usd(counter["borderline_via_batch_usd"])
    )
    whatif.add_row("no prompt caching", _usd(counter["no_caching_usd"]))
    out.print(whatif)
    ratio = totals["ratio_vs_pure_frontier"]
    out.print(f"pure frontier / hybrid: {'n/a' if ratio is None else f'{ratio:,.1f}x'}")
    projection = doc["projection"]
    month = Table(title=f"30-day month at {projection['posts_per_day']:,.0f} posts/day")
    month.add_column("mode")
    month.add_column("USD / month", justify="right")
    for mode, usd in projection["monthly_usd"].items():
        month.add_row(mode, _usd(usd, 2))
    month.add_row("[bold]machine[/bold]", _usd(projection["monthly_machine_usd"], 2))
    month.add_row("[bold]human[/bold]", _usd(projection["monthly_human_usd"], 2))
    month.add_row("pure frontier", _usd(projection["monthly_pure_frontier_usd"], 2))
    out.print(month)
    sens = doc["sensitivity"]
    out.print("sensitivity, USD per month for one more point (0.01):")
    out.print(f"  borderline share  {_signed(sens['borderline_share_point_usd_per_month'])}")
    out.print(f"  cache hit rate    {_signed(sens['cache_hit_rate_point_usd_per_month'])}")
    out.print(f"  review share      {_signed(sens['review_share_point_usd_per_month'])}")
