"""What moderation cost, per mode, what it would have cost otherwise, and what it will cost (pure).

The inputs are measured totals for a window (:class:`ModeUsage` per :class:`Mode`, read from the
verdict history, the review items and the provider-usage ledger) and unit prices
(:class:`UnitPrices`). Everything here is arithmetic over them:

- **per mode**: posts, tokens, USD, USD per 1,000 posts of that mode and its share of the total.
  Provider modes use the USD recorded with each call (priced when it was made); the classifier
  and the replay's scoring are priced from their inference seconds; human review from the
  reviewers' handling time (claim to decision).
- **counterfactuals**, from the same measured tokens: every post through the frontier model in
  real time (the measured frontier tokens per post, cache behaviour included, times all posts);
  every borderline post through the Message Batches API instead; no prompt caching (every
  cached or cache-written token billed as plain input).
- **projection** to a daily volume, per 30-day month, assuming the measured mix.
- **sensitivity**: the monthly dollar effect of one point of borderline share, of cache hit
  rate and of review share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum

from pipeline.core.cost import CallMode, PriceTable, TokenUsage, cost_usd

DAYS_PER_MONTH = 30
#: Characters per token of English text, to turn a token volume into posts (an estimate: the
#: frontier bills by its own tokenizer; use ``--posts-per-day`` when the post count is known).
CHARS_PER_TOKEN = 4.0


class Mode(StrEnum):
    CLASSIFIER = "classifier"
    FRONTIER = "frontier"
    BATCH = "batch"
    STREAMING = "streaming"
    HUMAN = "human"


PROVIDER_MODES = (Mode.FRONTIER, Mode.BATCH, Mode.STREAMING)
_CALL_MODE = {
    Mode.FRONTIER: CallMode.REALTIME,
    Mode.BATCH: CallMode.BATCH,
    Mode.STREAMING: CallMode.STREAMING,
}


@dataclass(frozen=True, slots=True)
class ModeUsage:
    """Measured totals of one mode in the window.

    ``posts`` are the posts the mode decided (for review: items decided, for streaming:
    analyses); ``provider_posts`` those of them that called the provider and carry ``tokens``.
    """

    posts: int = 0
    tokens: TokenUsage = field(default_factory=TokenUsage)
    provider_usd: float = 0.0
    compute_seconds: float = 0.0
    handling_seconds: float = 0.0
    provider_posts: int = 0

    def __add__(self, other: ModeUsage) -> ModeUsage:
        return ModeUsage(
            self.posts + other.posts,
            self.tokens + other.tokens,
            self.provider_usd + other.provider_usd,
            self.compute_seconds + other.compute_seconds,
            self.handling_seconds + other.handling_seconds,
            self.provider_posts + other.provider_posts,
        )


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """Provider list prices plus the prices of classifier compute and reviewer time."""

    provider: PriceTable
    compute_usd_per_hour: float
    reviewer_usd_per_hour: float


@dataclass(frozen=True, slots=True)
class ModeCost:
    mode: Mode
    posts: int
    provider_posts: int
    provider_usd: float
    tokens: TokenUsage
    usd: float
    usd_per_1000: float | None
    share: float


@dataclass(frozen=True, slots=True)
class Counterfactuals:
    """Machine cost of the same window under another design (``None``: nothing to measure)."""

    pure_frontier_usd: float | None
    borderline_via_batch_usd: float
    no_caching_usd: float


@dataclass(frozen=True, slots=True)
class Projection:
    posts_per_day: float
    monthly_usd: dict[Mode, float]
    monthly_machine_usd: float
    monthly_human_usd: float
    monthly_pure_frontier_usd: float | None


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """Monthly USD added by one more point (0.01) of each share, at the projected volume."""

    borderline_share_point: float | None
    cache_hit_rate_point: float
    review_share_point: float | None


@dataclass(frozen=True, slots=True)
class CostReport:
    posts: int
    modes: list[ModeCost]
    machine_usd: float
    human_usd: float
    borderline_share: float
    review_share: float
    cache_hit_rate: float
    counterfactuals: Counterfactuals
    projection: Projection
    sensitivity: Sensitivity

    @property
    def usd_per_1000_machine(self) -> float | None:
        return _per_1000(self.machine_usd, self.posts)

    @property
    def usd_per_1000_human(self) -> float | None:
        return _per_1000(self.human_usd, self.posts)

    @property
    def ratio_vs_pure_frontier(self) -> float | None:
        pure = self.counterfactuals.pure_frontier_usd
        if pure is None or self.machine_usd <= 0:
            return None
        return pure / self.machine_usd


def _per_1000(usd: float, posts: int) -> float | None:
    return usd / posts * 1000.0 if posts else None


def mode_usd(usage: ModeUsage, prices: UnitPrices) -> float:
    """What ``usage`` cost: provider USD plus compute plus reviewer time."""
    compute = usage.compute_seconds / 3600.0 * prices.compute_usd_per_hour
    human = usage.handling_seconds / 3600.0 * prices.reviewer_usd_per_hour
    return usage.provider_usd + compute + human


def input_side(tokens: TokenUsage) -> int:
    """Every prompt token, however billed: uncached, cache writes and cache reads."""
    return tokens.input_tokens + tokens.cache_creation_input_tokens + tokens.cache_read_input_tokens


def without_caching(tokens: TokenUsage) -> TokenUsage:
    """``tokens`` as billed if nothing were cached: every input-side token is plain input."""
    return TokenUsage(input_tokens=input_side(tokens), output_tokens=tokens.output_tokens)


def scaled(tokens: TokenUsage, factor: float) -> TokenUsage:
    """``tokens`` times ``factor`` (rounded per kind), for per-post extrapolation."""
    return TokenUsage(
        **{f.name: round(getattr(tokens, f.name) * factor) for f in fields(TokenUsage)}
    )


def cache_hit_rate_of(usage: Mapping[Mode, ModeUsage]) -> float:
    """Cache-read tokens over all input-side tokens, across the provider modes."""
    total = sum((usage[m].tokens for m in PROVIDER_MODES if m in usage), TokenUsage())
    side = input_side(total)
    return total.cache_read_input_tokens / side if side else 0.0


def _reference(usage: Mapping[Mode, ModeUsage]) -> tuple[Mode, ModeUsage] | None:
    """The mode whose per-post tokens stand for "a post through the frontier model"."""
    for mode in (Mode.FRONTIER, Mode.BATCH):
        measured = usage.get(mode)
        if measured is not None and measured.provider_posts and input_side(measured.tokens):
            return mode, measured
    return None


def counterfactuals(
    usage: Mapping[Mode, ModeUsage], prices: UnitPrices, *, posts: int, machine_usd: float
) -> Counterfactuals:
    table = prices.provider
    reference = _reference(usage)
    pure: float | None = None
    if reference is not None and posts:
        _, measured = reference
        # The measured tokens per provider post, times every post, at real-time prices.
        everyone = scaled(measured.tokens, posts / measured.provider_posts)
        pure = cost_usd(everyone, table, CallMode.REALTIME)
    frontier = usage.get(Mode.FRONTIER, ModeUsage())
    via_batch = (
        machine_usd - frontier.provider_usd + cost_usd(frontier.tokens, table, CallMode.BATCH)
    )
    no_cache = machine_usd
    for mode in PROVIDER_MODES:
        measured = usage.get(mode, ModeUsage())
        no_cache += cost_usd(without_caching(measured.tokens), table, _CALL_MODE[mode]) - cost_usd(
            measured.tokens, table, _CALL_MODE[mode]
        )
    return Counterfactuals(pure, max(via_batch, 0.0), max(no_cache, 0.0))


def posts_per_day_for_tokens(tokens_per_day: float, mean_post_chars: float) -> float:
    """Posts a day that make ``tokens_per_day`` of post text (``CHARS_PER_TOKEN`` estimate)."""
    if mean_post_chars <= 0:
        raise ValueError("the window has no post text to estimate tokens per post from")
    return tokens_per_day / (mean_post_chars / CHARS_PER_TOKEN)


def build_report(
    usage: Mapping[Mode, ModeUsage],
    prices: UnitPrices,
    *,
    window_days: float,
    posts_per_day: float | None = None,
) -> CostReport:
    """The whole report for a window of ``window_days`` (projection at ``posts_per_day``, or at
    the window's own rate)."""
    measured = {mode: usage.get(mode, ModeUsage()) for mode in Mode}
    posts = measured[Mode.CLASSIFIER].posts
    costs = {mode: mode_usd(measured[mode], prices) for mode in Mode}
    machine = sum(usd for mode, usd in costs.items() if mode is not Mode.HUMAN)
    human = costs[Mode.HUMAN]
    total = machine + human
    modes = [
        ModeCost(
            mode=mode,
            posts=m.posts,
            provider_posts=m.provider_posts,
            provider_usd=m.provider_usd,
            tokens=m.tokens,
            usd=costs[mode],
            usd_per_1000=_per_1000(costs[mode], m.posts),
            share=costs[mode] / total if total > 0 else 0.0,
        )
        for mode, m in measured.items()
    ]
    frontier_posts = measured[Mode.FRONTIER].posts
    reviewed = measured[Mode.HUMAN].posts
    borderline_share = frontier_posts / posts if posts else 0.0
    review_share = reviewed / posts if posts else 0.0
    counter = counterfactuals(usage, prices, posts=posts, machine_usd=machine)
    rate = (
        posts_per_day
        if posts_per_day is not None
        else (posts / window_days if window_days > 0 else 0.0)
    )
    projection = _project(costs, counter, posts=posts, posts_per_day=rate)
    sensitivity = _sensitivity(usage, prices, costs, posts_per_day=rate)
    return CostReport(
        posts=posts,
        modes=modes,
        machine_usd=machine,
        human_usd=human,
        borderline_share=borderline_share,
        review_share=review_share,
        cache_hit_rate=cache_hit_rate_of(usage),
        counterfactuals=counter,
        projection=projection,
        sensitivity=sensitivity,
    )


def _project(
    costs: Mapping[Mode, float], counter: Counterfactuals, *, posts: int, posts_per_day: float
) -> Projection:
    factor = posts_per_day * DAYS_PER_MONTH / posts if posts else 0.0
    monthly = {mode: usd * factor for mode, usd in costs.items()}
    pure = counter.pure_frontier_usd
    return Projection(
        posts_per_day=posts_per_day,
        monthly_usd=monthly,
        monthly_machine_usd=sum(v for m, v in monthly.items() if m is not Mode.HUMAN),
        monthly_human_usd=monthly[Mode.HUMAN],
        monthly_pure_frontier_usd=pure * factor if pure is not None else None,
    )


def _sensitivity(
    usage: Mapping[Mode, ModeUsage],
    prices: UnitPrices,
    costs: Mapping[Mode, float],
    *,
    posts_per_day: float,
) -> Sensitivity:
    monthly_posts = posts_per_day * DAYS_PER_MONTH
    point = 0.01 * monthly_posts
    frontier = usage.get(Mode.FRONTIER, ModeUsage())
    human = usage.get(Mode.HUMAN, ModeUsage())
    per_borderline = costs[Mode.FRONTIER] / frontier.posts if frontier.posts else None
    per_review = costs[Mode.HUMAN] / human.posts if human.posts else None
    posts = usage.get(Mode.CLASSIFIER, ModeUsage()).posts
    factor = monthly_posts / posts if posts else 0.0
    table = prices.provider
    cache_point = 0.0
    for mode in PROVIDER_MODES:
        measured = usage.get(mode, ModeUsage())
        side = input_side(measured.tokens) * factor
        saving = (table.input_per_mtok - table.cache_read_per_mtok) / 1_000_000.0
        multiplier = table.batch_multiplier if mode is Mode.BATCH else 1.0
        cache_point -= 0.01 * side * saving * multiplier
    return Sensitivity(
        borderline_share_point=point * per_borderline if per_borderline is not None else None,
        cache_hit_rate_point=cache_point,
        review_share_point=point * per_review if per_review is not None else None,
    )
