"""What a dry run's borderline posts would cost through Message Batches (pure, no requests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from replay.config import ReplayConfig
from replay.decide import ChunkPlan, ReplayPost
from replay.message_batch_plan import count_estimate
from replay.report import FrontierTally, estimate_cost


@dataclass(slots=True)
class DryRunCost:
    """Token estimates of the borderline posts a dry run found, added up over chunks."""

    input_tokens: int = 0
    output_tokens: int = 0
    posts: int = 0

    def add(self, plan: ChunkPlan, posts: Sequence[ReplayPost], texts: Sequence[str]) -> None:
        """Count the borderline posts of one chunk (``texts`` as the classifier saw them)."""
        ids = {d.post_id for d in plan.borderline}
        chosen = [t for p, t in zip(posts, texts, strict=True) if p.post_id in ids]
        tin, tout = count_estimate(chosen)
        self.input_tokens += tin
        self.output_tokens += tout
        self.posts += len(chosen)

    def to_json(self, config: ReplayConfig) -> dict[str, Any]:
        """The report's ``frontier`` section: estimated cost, batch price vs real time."""
        multiplier = config.batch_price_multiplier
        cost = estimate_cost(
            self.input_tokens,
            self.output_tokens,
            input_per_mtok=config.price_input_per_mtok,
            output_per_mtok=config.price_output_per_mtok,
            multiplier=multiplier,
        )
        out = FrontierTally(submitted=self.posts, estimated_only=True).to_json(multiplier)
        out.update(
            cost_usd=round(cost.batch_usd, 6),
            realtime_price_usd=round(cost.realtime_usd, 6),
            saved_usd=round(cost.saved_usd, 6),
        )
        return out
