"""Provider cost from token usage (pure).

Anthropic bills four kinds of tokens: uncached input, output, cache writes (the first request
that stores a ``cache_control`` prefix) and cache reads (later requests that reuse it). A cache
write is priced by its lifetime: 1.25x base input for the default 5-minute entry, 2x for a
1-hour entry (``ttl: "1h"``); a read is 0.1x. The Message Batches API bills every kind at a
discount (half price at the time of writing). Source of the multipliers (as of 2026-12-02):
https://platform.claude.com/docs/en/build-with-claude/prompt-caching (pricing table).
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
    #: The part of ``cache_creation_input_tokens`` written with a 1-hour lifetime (the SDK's
    #: ``usage.cache_creation.ephemeral_1h_input_tokens``); the rest is 5-minute writes.
    cache_creation_1h_input_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_1h_input_tokens + other.cache_creation_1h_input_tokens,
        )

    @property
    def input_side_tokens(self) -> int:
        """Every prompt token, however billed: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


def cache_hit_rate(usage: TokenUsage) -> float:
    """Cache-read tokens / all input-side tokens (uncached + writes + reads); 0 when none."""
    total = usage.input_side_tokens
    return usage.cache_read_input_tokens / total if total else 0.0


@dataclass(frozen=True, slots=True)
class PriceTable:
    """USD per million tokens of each kind, and the multiplier applied to batch calls.

    ``cache_write_per_mtok`` prices 5-minute writes; ``cache_write_1h_per_mtok`` 1-hour writes
    (``None``: Anthropic's 2x the base input price).
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float
    cache_read_per_mtok: float
    batch_multiplier: float = 0.5
    cache_write_1h_per_mtok: float | None = None

    @property
    def write_1h_per_mtok(self) -> float:
        if self.cache_write_1h_per_mtok is None:
            return 2.0 * self.input_per_mtok
        return self.cache_write_1h_per_mtok


def cost_usd(usage: TokenUsage, prices: PriceTable, mode: CallMode = CallMode.REALTIME) -> float:
    """The USD cost of one call's ``usage`` (never negative)."""
    writes_1h = min(max(usage.cache_creation_1h_input_tokens, 0), usage.cache_creation_input_tokens)
    total = (
        usage.input_tokens * prices.input_per_mtok
        + usage.output_tokens * prices.output_per_mtok
        + (usage.cache_creation_input_tokens - writes_1h) * prices.cache_write_per_mtok
        + writes_1h * prices.write_1h_per_mtok
        + usage.cache_read_input_tokens * prices.cache_read_per_mtok
    ) / _PER_MTOK
    if mode is CallMode.BATCH:
        total *= prices.batch_multiplier
    return max(total, 0.0)
