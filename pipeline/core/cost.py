"""Provider cost from token usage (pure).

Anthropic bills four kinds of tokens: uncached input, output, cache writes (the first request
that stores a ``cache_control`` prefix) and cache reads (later requests that reuse it). The
Message Batches API bills every kind at a discount (half price at the time of writing).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

_PER_MTOK = 1_000_000.0


class CallMode(StrEnum):
    """How a call was made; also a metric label."""

    REALTIME = "realtime"
    BATCH = "batch"
    STREAMING = "streaming"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class PriceTable:
    """USD per million tokens of each kind, and the multiplier applied to batch calls."""

    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float
    cache_read_per_mtok: float
    batch_multiplier: float = 0.5


def cost_usd(usage: TokenUsage, prices: PriceTable, mode: CallMode = CallMode.REALTIME) -> float:
    """The USD cost of one call's ``usage`` (never negative)."""
    total = (
        usage.input_tokens * prices.input_per_mtok
        + usage.output_tokens * prices.output_per_mtok
        + usage.cache_creation_input_tokens * prices.cache_write_per_mtok
        + usage.cache_read_input_tokens * prices.cache_read_per_mtok
    ) / _PER_MTOK
    if mode is CallMode.BATCH:
        total *= prices.batch_multiplier
    return max(total, 0.0)
