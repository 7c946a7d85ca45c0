"""The typed cost configuration, sliced out of :class:`~pipeline.config.Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.core.cost_report import UnitPrices
from pipeline.frontier.config import ClientConfig


@dataclass(frozen=True, slots=True)
class CostConfig:
    prices: UnitPrices
    model: str
    prices_as_of: str
    prices_source: str
    compute_device: str

    @classmethod
    def from_settings(cls, settings: Settings) -> CostConfig:
        device = settings.cost_compute_device
        compute = (
            settings.cost_gpu_usd_per_hour if device == "gpu" else settings.cost_cpu_usd_per_hour
        )
        return cls(
            prices=UnitPrices(
                provider=ClientConfig.from_settings(settings).prices,
                compute_usd_per_hour=compute,
                reviewer_usd_per_hour=settings.cost_reviewer_usd_per_hour,
            ),
            model=settings.anthropic_model,
            prices_as_of=settings.frontier_prices_as_of,
            prices_source=settings.frontier_prices_source,
            compute_device=device,
        )
