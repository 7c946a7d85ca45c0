"""The cost section of :class:`~pipeline.config.Settings` (same ``MODSTREAM_*`` names).

A mixin of the one Settings, kept apart only to keep modules short. The provider's token prices
are in the frontier section (``MODSTREAM_FRONTIER_PRICE_*``); these are the prices of the other
modes and where the provider prices come from. ``modstream cost`` prints them with the report.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CostSettings(BaseModel):
    """Unit prices for ``modstream cost`` and the lead dashboard's cost panel."""

    frontier_prices_as_of: str = Field(
        default="2026-12-02",
        description="Date the MODSTREAM_FRONTIER_PRICE_* figures were read from their source.",
    )
    frontier_prices_source: str = Field(
        default="https://platform.claude.com/docs/en/about-claude/pricing (Claude Haiku 4.5 "
        "list prices; Message Batches at 50 %)",
        description="Where the MODSTREAM_FRONTIER_PRICE_* figures come from.",
    )
    cost_compute_device: Literal["cpu", "gpu"] = Field(
        default="cpu",
        description="Where the classifier runs, which selects the compute price below.",
    )
    cost_cpu_usd_per_hour: float = Field(
        default=0.0892,
        ge=0,
        description="USD per hour of classifier inference on CPU: a 2-vCPU on-demand node "
        "(AWS c7i.large, us-east-1 list price). Set your own node's price.",
    )
    cost_gpu_usd_per_hour: float = Field(
        default=4.0,
        ge=0,
        description="USD per hour of classifier inference on one GPU (an assumption for an "
        "on-demand H100/H200-class GPU). Set your own node's price.",
    )
    cost_reviewer_usd_per_hour: float = Field(
        default=30.0,
        ge=0,
        description="USD per hour of a reviewer's handling time, fully loaded (an assumption: "
        "set your team's figure).",
    )
