"""``modstream model compare``: a candidate against the live model and policy, from shadow
traffic (``MODSTREAM_SHADOW_MODEL``) or from a backtest of stored posts (``--backtest DIR``)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import click

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.model import model, stderr_logs
from modstream.commands.window import parse_window
from pipeline.config import Settings


async def _document(
    settings: Settings,
    *,
    since: datetime,
    until: datetime,
    backtest_dir: Path | None,
    policy_path: Path | None,
    limit: int,
    samples: int,
    posts_per_day: float | None,
) -> dict[str, Any]:
    from pipeline.core.shadow_report import build_comparison, comparison_document
    from pipeline.cost.config import CostConfig
    from pipeline.modelstore import load_model, load_policy_in_force
    from pipeline.registry.config import RegistryConfig
    from pipeline.registry.switch import starting_model
    from pipeline.shadow.compare import backtest, frontier_pricing
    from pipeline.shadow.load import load_candidate
    from pipeline.store.audit_samples import audit_estimates
    from pipeline.store.model_registry import PostgresModelRegistry
    from pipeline.store.pg import PostgresStore
    from pipeline.store.shadow import PostgresShadowStore

    store = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=2)
    try:
        shadow = PostgresShadowStore(store.pool)
        extra: dict[str, Any] = {
            "mode": "backtest" if backtest_dir else "shadow",
            "since": since.isoformat(),
            "until": until.isoformat(),
        }
        if backtest_dir is None:
            counts, versions = await shadow.counts(since, until, samples=samples, sample_chars=80)
            extra["versions"] = [
                {
                    "live_model": v.live_model,
                    "live_policy": v.live_policy,
                    "shadow_model": v.shadow_model,
                    "shadow_policy": v.shadow_policy,
                    "posts": v.posts,
                }
                for v in versions
            ]
        else:
            # The live side is what the real-time stage runs: the registry's active version,
            # else the built model (as at a stage's start).
            started = await starting_model(
                RegistryConfig.from_settings(settings),
                PostgresModelRegistry(store.pool),
                partial(load_model, settings),
                stage="compare",
            )
            live = (started.classifier, load_policy_in_force(settings))
            candidate = load_candidate(settings, backtest_dir, policy_path, live_policy=live[1])

            def progress(done: int, total: int) -> None:
                click.echo(f"backtest: {done}/{total} posts scored", err=True)

            try:
                counts = await backtest(
                    shadow,
                    live=live,
                    candidate=candidate,
                    since=since,
                    until=until,
                    limit=limit,
                    samples=samples,
                    progress=progress,
                )
            finally:
                live[0].close()
                candidate[0].close()
            extra["versions"] = [
                {
                    "live_model": live[0].model_version,
                    "live_policy": live[1].version,
                    "shadow_model": candidate[0].model_version,
                    "shadow_policy": candidate[1].version,
                    "posts": counts.posts,
                }
            ]
        pricing = await frontier_pricing(
            store.pool,
            CostConfig.from_settings(settings),
            since=since,
            until=until,
            posts_per_day=posts_per_day,
        )
        report = build_comparison(counts, pricing)
        doc = comparison_document(report)
        doc.update(extra)
        # What the live classifier lets through (audit sampling), for the same window.
        doc["audit"] = await audit_estimates(store.pool, since, until, edges=settings.audit_edges)
        return doc
    finally:
        await store.close()


def _render(doc: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 100:.2f} %"

    def usd(value: float | None) -> str:
        return "n/a" if value is None else f"${value:,.2f}"

    click.echo(f"{doc['mode']} comparison, {doc['since']} .. {doc['until']}")
    for v in doc["versions"]:
        click.echo(
            f"  live {v['live_model']} / {v['live_policy']}  vs  "
            f"candidate {v['shadow_model']} / {v['shadow_policy']}  ({v['posts']} posts)"
        )
    click.echo(
        f"posts {doc['posts']}, agreement {pct(doc['agreement'])}, "
        f"{doc['disagreements']} would change"
    )
    for t in doc["transitions"]:
        click.echo(f"  {t['live']} -> {t['shadow']} [{t['category']}]: {t['posts']}")
        for s in t["samples"]:
            click.echo(f"      {s['post_id']}: {s['text']}")
    for side in ("live", "shadow"):
        figures = doc[side]
        click.echo(
            f"{side:>6}: borderline {pct(figures['borderline_share'])}, frontier "
            f"${figures['frontier_usd_per_1000_posts']:.4f} per 1,000 posts, "
            f"{usd(figures['frontier_usd_per_month'])} per month"
        )
    click.echo(f"monthly frontier delta: {usd(doc['frontier_monthly_delta_usd'])}")
    source = doc["frontier_usd_per_call_source"]
    click.echo(f"frontier call: ${doc['frontier_usd_per_call']:.6f} ({source})")
    seconds = doc["shadow_seconds_per_post"]
    shown = "n/a" if seconds is None else f"{seconds * 1000:.3f} ms"
    click.echo(f"candidate scoring per post: {shown}")
    audit = doc["audit"]
    click.echo(f"audit of live allows in the window ({audit['audited']} audited):")
    for category, figures in audit["overall"].items():
        click.echo(
            f"  {category}: false-negative rate {pct(figures['fn_rate'])} "
            f"[{pct(figures['fn_rate_low'])}, {pct(figures['fn_rate_high'])}], "
            f"prevalence among allowed {pct(figures['prevalence'])}"
        )


@model.command("compare")
@click.option("--since", default="24h", show_default=True, help="Start: 24h, 7d, or ISO time.")
@click.option("--until", default="now", show_default=True, help="End: now, 1h, or ISO time.")
@click.option(
    "--backtest",
    "backtest_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Score stored posts with this candidate model folder instead of reading shadow traffic.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The candidate's policy for --backtest (default: the live policy).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1_000_000),
    default=2000,
    show_default=True,
    help="Posts to backtest (the latest of the window).",
)
@click.option(
    "--samples",
    type=click.IntRange(0, 50),
    default=3,
    show_default=True,
    help="Sample posts per transition.",
)
@click.option(
    "--posts-per-day",
    type=click.FloatRange(min=0),
    default=None,
    help="Project the monthly frontier cost at this volume (default: the window's rate).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@pass_context
def compare_cmd(
    ctx: CommandContext,
    since: str,
    until: str,
    backtest_dir: Path | None,
    policy_path: Path | None,
    limit: int,
    samples: int,
    posts_per_day: float | None,
    as_json: bool,
) -> None:
    """Agreement, would-be transitions, borderline share and frontier cost, candidate vs live.

    Without --backtest: the shadow decisions the real-time stage recorded in the window
    (MODSTREAM_SHADOW_MODEL). With --backtest DIR: the window's latest --limit stored posts,
    scored now by the live model (MODSTREAM_MODEL_DIR) and the candidate; nothing is written.
    """
    if policy_path is not None and backtest_dir is None:
        raise click.UsageError("--policy applies to --backtest (a shadow's policy is recorded)")
    start, end = parse_window(since, until, now=datetime.now(UTC))
    settings = ctx.settings  # configures logging; then keep stdout for the report
    stderr_logs()
    doc = asyncio.run(
        _document(
            settings,
            since=start,
            until=end,
            backtest_dir=backtest_dir,
            policy_path=policy_path,
            limit=limit,
            samples=samples,
            posts_per_day=posts_per_day,
        )
    )
    if as_json:
        click.echo(json.dumps(doc, sort_keys=True, default=str))
        return
    _render(doc)
