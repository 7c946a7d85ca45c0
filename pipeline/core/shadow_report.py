"""How a candidate compares with the live model and policy (pure): the arithmetic of
``modstream model compare``, over shadow traffic or a backtest of history.

Inputs are counts (:class:`ComparisonCounts`): from SQL aggregates over the shadow table, or
tallied here from scored pairs (:func:`tally`, the backtest). Everything else is arithmetic:

- **agreement**: the share of posts whose verdict is the same under both;
- **transitions**: per (live verdict → candidate verdict) and category, the posts that would
  change, with a few samples each. A post counts once under each category either side flagged
  (``none`` when neither did), so category rows of one transition may add up to more than its
  posts;
- **borderline share** under each, and the **projected frontier cost** it implies: every
  borderline post is one real-time frontier call, at ``usd_per_call``
  (:class:`FrontierPricing` says where that figure comes from), per 1,000 posts and per
  30-day month at ``posts_per_day``;
- **latency**: the candidate's scoring seconds per post.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline.core.cost_report import DAYS_PER_MONTH
from schemas import Verdict

NO_CATEGORY = "none"
SAMPLE_CHARS = 80
SAMPLES_PER_TRANSITION = 3


@dataclass(frozen=True, slots=True)
class Sample:
    post_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Transition:
    """Posts whose verdict would move from ``live`` to ``shadow``, flagged for ``category``."""

    live: Verdict
    shadow: Verdict
    category: str
    posts: int
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True, slots=True)
class ComparisonCounts:
    posts: int
    agreed: int
    live_borderline: int
    shadow_borderline: int
    shadow_seconds: float
    transitions: Sequence[Transition] = ()


@dataclass(frozen=True, slots=True)
class ComparedPost:
    """One post decided by both: the input of :func:`tally`."""

    post_id: str
    text: str
    live: Verdict
    live_categories: Sequence[str]
    shadow: Verdict
    shadow_categories: Sequence[str]
    shadow_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class FrontierPricing:
    """USD of one real-time frontier call, where that figure comes from, and the volume to
    project at (``None``: unknown, so no monthly figure)."""

    usd_per_call: float
    source: str
    posts_per_day: float | None


@dataclass(frozen=True, slots=True)
class SideCost:
    borderline_share: float
    frontier_usd_per_1000: float
    frontier_usd_per_month: float | None


@dataclass(frozen=True, slots=True)
class ComparisonReport:
    posts: int
    agreement: float | None
    disagreements: int
    transitions: list[Transition]
    live: SideCost
    shadow: SideCost
    monthly_delta_usd: float | None
    shadow_seconds_per_post: float | None
    pricing: FrontierPricing
    extra: dict[str, object] = field(default_factory=dict)


def transition_categories(live: Iterable[str], shadow: Iterable[str]) -> list[str]:
    """The categories a changed post counts under: either side's, sorted; ``none`` if neither."""
    found = sorted(set(live) | set(shadow))
    return found or [NO_CATEGORY]


def sample_text(text: str, chars: int = SAMPLE_CHARS) -> str:
    """A post's text for a report line: control characters and runs of whitespace become one
    space, and it is cut to ``chars`` characters (``…`` marks a cut)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text[: chars * 4]).split())
    return flat if len(flat) <= chars else flat[: max(chars - 1, 0)] + "…"


def tally(
    posts: Iterable[ComparedPost],
    *,
    samples_per_transition: int = SAMPLES_PER_TRANSITION,
    sample_chars: int = SAMPLE_CHARS,
) -> ComparisonCounts:
    """Count scored pairs (the backtest), keeping the first samples of each transition."""
    total = agreed = live_borderline = shadow_borderline = 0
    seconds = 0.0
    counts: dict[tuple[Verdict, Verdict, str], int] = {}
    samples: dict[tuple[Verdict, Verdict, str], list[Sample]] = {}
    for post in posts:
        total += 1
        seconds += max(post.shadow_seconds, 0.0)
        live_borderline += post.live is Verdict.BORDERLINE
        shadow_borderline += post.shadow is Verdict.BORDERLINE
        if post.live is post.shadow:
            agreed += 1
            continue
        for category in transition_categories(post.live_categories, post.shadow_categories):
            key = (post.live, post.shadow, category)
            counts[key] = counts.get(key, 0) + 1
            kept = samples.setdefault(key, [])
            if len(kept) < samples_per_transition:
                kept.append(Sample(post.post_id, sample_text(post.text, sample_chars)))
    transitions = [
        Transition(live, shadow, category, n, tuple(samples[(live, shadow, category)]))
        for (live, shadow, category), n in counts.items()
    ]
    return ComparisonCounts(
        posts=total,
        agreed=agreed,
        live_borderline=live_borderline,
        shadow_borderline=shadow_borderline,
        shadow_seconds=seconds,
        transitions=transitions,
    )


def side_cost(borderline: int, posts: int, pricing: FrontierPricing) -> SideCost:
    """Borderline share and the frontier cost it implies, per 1,000 posts and per month."""
    share = borderline / posts if posts > 0 else 0.0
    per_1000 = share * 1000.0 * pricing.usd_per_call
    monthly = (
        share * pricing.posts_per_day * DAYS_PER_MONTH * pricing.usd_per_call
        if pricing.posts_per_day is not None
        else None
    )
    return SideCost(share, per_1000, monthly)


def _checked(counts: ComparisonCounts) -> None:
    """Counts read from a database or a file are untrusted: refuse what cannot be."""
    if counts.posts < 0 or not 0 <= counts.agreed <= counts.posts:
        raise ValueError(f"agreed {counts.agreed} of {counts.posts} posts is impossible")
    for name, value in (("live", counts.live_borderline), ("shadow", counts.shadow_borderline)):
        if not 0 <= value <= counts.posts:
            raise ValueError(f"{name} borderline {value} of {counts.posts} posts is impossible")
    if counts.shadow_seconds < 0:
        raise ValueError("shadow seconds cannot be negative")
    for t in counts.transitions:
        if t.live is t.shadow or not 0 < t.posts <= counts.posts - counts.agreed:
            raise ValueError(f"transition {t.live}->{t.shadow} of {t.posts} posts is impossible")


def build_comparison(counts: ComparisonCounts, pricing: FrontierPricing) -> ComparisonReport:
    """The report: agreement, transitions (largest first), borderline shares and frontier cost
    under each side, and the candidate's scoring seconds per post."""
    _checked(counts)
    if pricing.usd_per_call < 0 or (
        pricing.posts_per_day is not None and pricing.posts_per_day < 0
    ):
        raise ValueError("prices and volumes cannot be negative")
    posts = counts.posts
    live = side_cost(counts.live_borderline, posts, pricing)
    shadow = side_cost(counts.shadow_borderline, posts, pricing)
    delta = (
        shadow.frontier_usd_per_month - live.frontier_usd_per_month
        if shadow.frontier_usd_per_month is not None and live.frontier_usd_per_month is not None
        else None
    )
    ordered = sorted(
        counts.transitions, key=lambda t: (-t.posts, t.live.value, t.shadow.value, t.category)
    )
    return ComparisonReport(
        posts=posts,
        agreement=counts.agreed / posts if posts else None,
        disagreements=posts - counts.agreed,
        transitions=ordered,
        live=live,
        shadow=shadow,
        monthly_delta_usd=delta,
        shadow_seconds_per_post=counts.shadow_seconds / posts if posts else None,
        pricing=pricing,
    )


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def _side(side: SideCost) -> dict[str, float | None]:
    return {
        "borderline_share": round(side.borderline_share, 6),
        "frontier_usd_per_1000_posts": round(side.frontier_usd_per_1000, 6),
        "frontier_usd_per_month": _round(side.frontier_usd_per_month, 2),
    }


def comparison_document(report: ComparisonReport) -> dict[str, object]:
    """The report as one JSON-ready document (``modstream model compare --json``)."""
    return {
        "posts": report.posts,
        "agreement": _round(report.agreement, 6),
        "disagreements": report.disagreements,
        "transitions": [
            {
                "live": t.live.value,
                "shadow": t.shadow.value,
                "category": t.category,
                "posts": t.posts,
                "samples": [{"post_id": s.post_id, "text": s.text} for s in t.samples],
            }
            for t in report.transitions
        ],
        "live": _side(report.live),
        "shadow": _side(report.shadow),
        "frontier_monthly_delta_usd": _round(report.monthly_delta_usd, 2),
        "frontier_usd_per_call": round(report.pricing.usd_per_call, 8),
        "frontier_usd_per_call_source": report.pricing.source,
        "posts_per_day": _round(report.pricing.posts_per_day, 1),
        "shadow_seconds_per_post": _round(report.shadow_seconds_per_post, 6),
        **report.extra,
    }
