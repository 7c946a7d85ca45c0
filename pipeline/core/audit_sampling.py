"""Audit sampling (pure): which real-time ``allow`` decisions the frontier model looks at again,
and what the answers say about the posts the classifier lets through.

**Sample.** A real-time ``allow`` decision falls in *stratum* ``h`` by the post's highest score
(any category): ``h = bisect_right(edges, top)``, so ``edges = (0.05, 0.2, 0.4)`` make four strata
``[0, .05) [.05, .2) [.2, .4) [.4, 1]``. Stratum ``h`` is audited at rate ``π_h`` (configured;
higher-score strata are oversampled). A post is in the sample when ``u(post_id) < π_h``, where
``u`` is a keyed hash of the post id mapped to ``[0, 1)`` (blake2b keyed with the audit key), so
membership is the same on every run and replica and cannot be predicted without the key. Each
sampled item keeps ``π_h`` as its inclusion probability.

**Estimators.** For a set of strata (one day, or a whole window where every (day, stratum) cell is
a stratum) with ``N_h`` allowed posts, ``n_h`` audited and ``y_h`` of them removed by the frontier
model (in a category, or in any), and ``R`` posts the classifier removed itself (a census, from
the verdict history):

- prevalence among allowed posts ``P̂ = Σ_h W_h p̂_h`` with ``W_h = N_h / N``, ``p̂_h = y_h / n_h``
  (stratified Horvitz-Thompson: within a stratum every item has weight ``1/π_h``; with a known
  ``N_h`` the weights are calibrated to it, else ``N̂_h = n_h / π_h``);
- allowed violating posts ``Â = N P̂``; false-negative rate ``F̂ = Â / (Â + R)``.

**Interval** (95 % by default): a Wilson score interval for ``P̂`` with the Korn-Graubard effective
sample size ``n* = P̂(1 - P̂) / V̂``, ``V̂ = Σ_h W_h² p̃_h(1 - p̃_h) / n_h``, where the variance uses
``p̃_h = (y_h + ½) / (n_h + 1)`` so that a stratum with few or no violations found (the common
case at 0.5 %) does not claim zero variance (when ``P̂ = 0``, ``n* = 1 / Σ_h W_h² / n_h``). In 400
seeded synthetic streams per case this covers an injected false-negative rate 95.5-97.5 % of the
time (unsmoothed: 88-91 %; capping ``n*`` at ``Σ n_h``: 99 %). ``F`` is increasing in ``P``,
so ``F``'s interval is ``P``'s bounds mapped through ``N P / (N P + R)``. A stratum with allowed
posts but no audited one is pooled with its nearest audited neighbour (the higher one on a tie),
i.e. assumed to have its prevalence; ``pooled`` counts them. No finite-population correction: the
interval is for the rate that produced the traffic, not only this day's posts.

An ``escalate`` answer is not counted as a violation (the verdict stands; a reviewer looks), and
frontier categories are mapped to the policy's as teacher labels map them
(:func:`policy_category`: ``hate``; ``spam``/``scam`` → ``spam``; anything else → ``toxic``).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Default bin edges on the highest score of an allowed post.
DEFAULT_EDGES: tuple[float, ...] = (0.05, 0.2, 0.4)
#: Default audit rate per stratum (about 0.5 % of allowed posts when most score below 0.05).
DEFAULT_RATES: tuple[float, ...] = (0.0035, 0.01, 0.025, 0.05)
#: Two-sided 95 % normal quantile.
Z_95 = 1.959963984540054
#: The estimate row that counts a removal in any category.
ANY = "any"
_SPAM = frozenset({"spam", "scam"})
_HASH_SPAN = float(2**64)


class AuditPlanError(ValueError):
    """Bin edges and rates that do not describe a sample (the message says which rule)."""


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """Bin edges on the top score, one rate per stratum, and the hash key."""

    edges: tuple[float, ...] = DEFAULT_EDGES
    rates: tuple[float, ...] = DEFAULT_RATES
    key: str = field(default="modstream-audit", repr=False)

    def __post_init__(self) -> None:
        if len(self.rates) != len(self.edges) + 1:
            raise AuditPlanError(
                f"{len(self.edges)} bin edges make {len(self.edges) + 1} strata, "
                f"so give {len(self.edges) + 1} rates (got {len(self.rates)})"
            )
        if list(self.edges) != sorted(set(self.edges)) or not all(
            0.0 < e < 1.0 for e in self.edges
        ):
            raise AuditPlanError("bin edges must be strictly increasing, each in (0, 1)")
        if not all(0.0 < r <= 1.0 for r in self.rates):
            raise AuditPlanError("every stratum's rate must be in (0, 1]")
        if not self.key:
            raise AuditPlanError("the audit hash key must not be empty")

    def stratum(self, top_score: float) -> int:
        """The stratum of a post whose highest score is ``top_score``."""
        return bisect.bisect_right(self.edges, top_score)

    def rate(self, stratum: int) -> float:
        return self.rates[stratum]

    def unit(self, post_id: str) -> float:
        """The post's keyed hash in ``[0, 1)``."""
        digest = hashlib.blake2b(
            post_id.encode("utf-8"), key=self.key.encode("utf-8")[:64], digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") / _HASH_SPAN

    def pick(self, post_id: str, scores: Mapping[str, float]) -> Pick | None:
        """The post's stratum and inclusion probability if it is in the sample, else None."""
        top = top_score(scores)
        stratum = self.stratum(top)
        probability = self.rates[stratum]
        if self.unit(post_id) >= probability:
            return None
        return Pick(post_id, stratum, probability, top)


@dataclass(frozen=True, slots=True)
class Pick:
    """A sampled allowed decision: its stratum and inclusion probability."""

    post_id: str
    stratum: int
    probability: float
    top_score: float


def top_score(scores: Mapping[str, float]) -> float:
    """The highest score of a post, clamped to ``[0, 1]`` (0 when it has none)."""
    return min(max(max(scores.values(), default=0.0), 0.0), 1.0)


def policy_category(frontier_category: str) -> str:
    """The policy category a frontier category counts towards (as teacher labels map it)."""
    name = frontier_category.strip().lower()
    if name == "hate":
        return "hate"
    return "spam" if name in _SPAM else "toxic"


def violation_categories(verdict: str, categories: Iterable[str]) -> frozenset[str]:
    """The estimate rows an audit answer counts in: ``any`` and its policy categories when the
    frontier model removed the post; none otherwise."""
    if verdict != "remove":
        return frozenset()
    mapped = {policy_category(c) for c in categories} or {"toxic"}
    return frozenset({ANY, *mapped})


@dataclass(frozen=True, slots=True)
class StratumTally:
    """One stratum: allowed posts (None: unknown), audited ones, violations found, the rate."""

    allowed: int | None
    audited: int
    violating: int
    probability: float

    def population(self) -> float:
        if self.allowed is not None:
            return float(self.allowed)
        return self.audited / self.probability


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Estimate:
    """Prevalence among allowed posts and false-negative rate, with intervals."""

    allowed: float
    audited: int
    found: int
    removed: int
    prevalence: Interval | None
    violating_allowed: float | None
    fn_rate: Interval | None
    pooled: int

    def to_json(self) -> dict[str, float | int | None]:
        def part(name: str, value: Interval | None) -> dict[str, float | None]:
            if value is None:
                return {name: None, f"{name}_low": None, f"{name}_high": None}
            return {name: value.estimate, f"{name}_low": value.low, f"{name}_high": value.high}

        return {
            "allowed": round(self.allowed, 3),
            "audited": self.audited,
            "found": self.found,
            "removed": self.removed,
            "violating_allowed": (
                None if self.violating_allowed is None else round(self.violating_allowed, 3)
            ),
            "pooled_strata": self.pooled,
            **part("prevalence", self.prevalence),
            **part("fn_rate", self.fn_rate),
        }


def wilson(p: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` (effective) trials."""
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _pooled(strata: Sequence[StratumTally]) -> tuple[list[tuple[float, int, int]], int]:
    """(population, audited, violating) per audited stratum, unaudited ones pooled in."""
    audited = [i for i, s in enumerate(strata) if s.audited > 0]
    cells = {i: [strata[i].population(), strata[i].audited, strata[i].violating] for i in audited}
    pooled = 0
    for i, s in enumerate(strata):
        if s.audited > 0 or s.population() <= 0 or not audited:
            continue
        nearest = min(audited, key=lambda j: (abs(j - i), -j))
        cells[nearest][0] += s.population()
        pooled += 1
    return [(float(c[0]), int(c[1]), int(c[2])) for c in cells.values()], pooled


def estimate(strata: Sequence[StratumTally], removed: int, *, z: float = Z_95) -> Estimate:
    """Prevalence and false-negative rate from stratum tallies (see the module doc)."""
    cells, pooled = _pooled(strata)
    total = sum(s.population() for s in strata)
    audited = sum(s.audited for s in strata)
    found = sum(s.violating for s in strata)
    sampled_total = sum(c[0] for c in cells)
    if not cells or sampled_total <= 0:
        # No allowed post at all: nothing was let through, so every violation was removed.
        none_missed = Interval(0.0, 0.0, 0.0) if removed > 0 and total <= 0 else None
        return Estimate(total, audited, found, removed, None, None, none_missed, pooled)
    prevalence = variance = inverse_n = 0.0
    for population, n, y in cells:
        weight = population / sampled_total
        p = y / n
        prevalence += weight * p
        smoothed = (y + 0.5) / (n + 1)
        variance += weight * weight * smoothed * (1 - smoothed) / n
        inverse_n += weight * weight / n
    n_eff = prevalence * (1 - prevalence) / variance if prevalence > 0 else 1.0 / inverse_n
    low, high = wilson(prevalence, n_eff, z)
    p_interval = Interval(prevalence, low, high)
    allowed_violating = total * prevalence

    def fn_rate(p: float) -> float:
        missed = total * p
        return missed / (missed + removed) if missed + removed > 0 else 0.0

    fn_interval = None
    if removed > 0 or high > 0:
        fn_interval = Interval(fn_rate(prevalence), fn_rate(low), fn_rate(high))
    return Estimate(
        total, audited, found, removed, p_interval, allowed_violating, fn_interval, pooled
    )
