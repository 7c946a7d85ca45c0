"""``modstream model compare``'s data: shadow traffic from Postgres, or a backtest that scores a
window of stored posts with the live and the candidate model (writing nothing), and the price
of a frontier call to project the borderline share's cost with."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from classifiers.base import Classifier
from pipeline.core.cost import TokenUsage, cost_usd
from pipeline.core.cost_report import CHARS_PER_TOKEN, Mode
from pipeline.core.language import GATED_OUTCOME
from pipeline.core.policy import Policy, evaluate
from pipeline.core.shadow_report import ComparedPost, ComparisonCounts, FrontierPricing, tally
from pipeline.cost.config import CostConfig
from pipeline.frontier.prompt import POLICY
from pipeline.language_gate import held_back, score_passed
from pipeline.store.cost import window_usage
from pipeline.store.shadow import PostgresShadowStore
from schemas import Verdict

#: The cost ledger window that prices a frontier call and measures the daily volume.
PRICING_DAYS = 30
#: Output tokens of one verdict (the tool answer), for the estimate when nothing was measured.
EXPECTED_OUTPUT_TOKENS = 120
BACKTEST_CHUNK = 256

Progress = Callable[[int, int], None]


async def frontier_pricing(
    pool: asyncpg.Pool,
    config: CostConfig,
    *,
    since: datetime,
    until: datetime,
    posts_per_day: float | None,
) -> FrontierPricing:
    """The USD of one real-time frontier call and the volume to project at.

    Measured when the cost ledger (what ``modstream cost`` reads) holds real-time frontier calls
    in the last :data:`PRICING_DAYS` days: their recorded USD over their count. Otherwise
    estimated from the list prices (``MODSTREAM_FRONTIER_PRICE_*``): the system prompt and a
    post of the window's mean length as input, :data:`EXPECTED_OUTPUT_TOKENS` as output. The
    volume is ``posts_per_day`` if given, else the rate of the classifier's decisions in
    ``[since, until)`` (widened to whole hours, as ``modstream cost`` reads the ledger).
    """
    usage = await window_usage(pool, until - timedelta(days=PRICING_DAYS), until)
    frontier = usage.modes[Mode.FRONTIER]
    window = f"{usage.since:%Y-%m-%d %H:%M}..{usage.until:%Y-%m-%d %H:%M} UTC"
    if frontier.provider_posts > 0 and frontier.provider_usd > 0:
        per_call = frontier.provider_usd / frontier.provider_posts
        source = (
            f"measured: {frontier.provider_posts} real-time frontier calls in the cost ledger, "
            f"{window} (modstream cost)"
        )
    else:
        tokens = TokenUsage(
            input_tokens=round((len(POLICY) + usage.mean_post_chars) / CHARS_PER_TOKEN),
            output_tokens=EXPECTED_OUTPUT_TOKENS,
        )
        per_call = cost_usd(tokens, config.prices.provider)
        source = (
            f"estimated: {tokens.input_tokens} input + {tokens.output_tokens} output tokens at "
            f"{config.model} list prices as of {config.prices_as_of} (MODSTREAM_FRONTIER_PRICE_*, "
            f"no prompt caching); the cost ledger has no frontier calls in {window}"
        )
    rate = posts_per_day
    if rate is None:
        volume = await window_usage(pool, since, until)
        classified = volume.modes[Mode.CLASSIFIER].posts
        days = (volume.until - volume.since).total_seconds() / 86_400.0
        rate = classified / days if classified and days > 0 else None
    return FrontierPricing(usd_per_call=per_call, source=source, posts_per_day=rate)


async def _decide(
    classifier: Classifier, policy: Policy, texts: list[str], gated: list[str | None] | None
) -> tuple[list[tuple[Verdict, list[str]]], list[str | None], float]:
    """Verdicts and categories of ``texts`` under one model and policy, the gate's reasons, and
    the scoring seconds (``gated`` given: reuse those reasons instead of identifying again)."""
    started = time.perf_counter()
    reasons = gated if gated is not None else (await held_back(policy, texts))[0]
    scores = await score_passed(classifier, texts, reasons)
    seconds = time.perf_counter() - started
    out: list[tuple[Verdict, list[str]]] = []
    for post_scores in scores:
        outcome = GATED_OUTCOME if post_scores is None else evaluate(policy, post_scores)
        out.append((outcome.verdict, list(outcome.categories)))
    return out, reasons, seconds


async def backtest(
    store: PostgresShadowStore,
    *,
    live: tuple[Classifier, Policy],
    candidate: tuple[Classifier, Policy],
    since: datetime,
    until: datetime,
    limit: int,
    samples: int,
    progress: Progress | None = None,
) -> ComparisonCounts:
    """Score the latest ``limit`` posts ingested in ``[since, until)`` with both; write nothing."""
    posts = await store.posts(since, until, limit)
    live_model, live_policy = live
    model, policy = candidate
    same_gate = policy.languages == live_policy.languages
    compared: list[ComparedPost] = []
    for start in range(0, len(posts), BACKTEST_CHUNK):
        chunk = posts[start : start + BACKTEST_CHUNK]
        texts = [text for _, text in chunk]
        live_out, reasons, _ = await _decide(live_model, live_policy, texts, None)
        cand_out, _, seconds = await _decide(model, policy, texts, reasons if same_gate else None)
        share = seconds / len(chunk)
        for (post_id, text), (lv, lc), (sv, sc) in zip(chunk, live_out, cand_out, strict=True):
            compared.append(ComparedPost(post_id, text, lv, lc, sv, sc, shadow_seconds=share))
        if progress is not None:
            progress(start + len(chunk), len(posts))
    return tally(compared, samples_per_transition=samples)
