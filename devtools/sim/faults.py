"""Fault injection for the simulator: its configuration and the per-request draw.

Configure at start (CLI flags or a JSON file) and at run time (``POST /_sim/config`` with a
partial JSON object). A request may force its fate with headers, for deterministic tests:

- ``x-sim-fault``: one of :class:`Fault` (``none``, ``rate_limit``, ``overloaded``,
  ``server_error``, ``hang``, ``malformed_json``, ``missing_field``, ``bad_enum``,
  ``out_of_range``, ``refusal``, ``refusal_text``, ``stream_error``);
- ``x-sim-latency-ms``: the latency of this request in milliseconds.
"""

from __future__ import annotations

import math
import random
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devtools.sim.cache import DEFAULT_MIN_CACHEABLE_TOKENS, MIN_CACHEABLE_TOKENS

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


class Fault(StrEnum):
    NONE = "none"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    HANG = "hang"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    BAD_ENUM = "bad_enum"
    OUT_OF_RANGE = "out_of_range"
    REFUSAL = "refusal"
    REFUSAL_TEXT = "refusal_text"
    STREAM_ERROR = "stream_error"


MALFORMED = (Fault.MALFORMED_JSON, Fault.MISSING_FIELD, Fault.BAD_ENUM, Fault.OUT_OF_RANGE)
QUICK = frozenset({Fault.RATE_LIMIT, Fault.OVERLOADED, Fault.SERVER_ERROR})


class SimConfig(BaseModel):
    """Simulator behaviour. Rates are independent shares of requests in [0, 1]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_p50_s: float = Field(default=0.05, ge=0, description="Median response latency.")
    latency_p99_s: float = Field(default=0.1, ge=0, description="99th percentile latency.")
    error_latency_s: float = Field(default=0.01, ge=0, description="Latency of 429/529/500.")
    rate_429: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0, description="retry-after on a 429.")
    rate_529: float = Field(default=0.0, ge=0, le=1)
    rate_500: float = Field(default=0.0, ge=0, le=1)
    rate_hang: float = Field(default=0.0, ge=0, le=1)
    rate_malformed: float = Field(default=0.0, ge=0, le=1)
    rate_refusal: float = Field(default=0.0, ge=0, le=1)
    hang_s: float = Field(default=600.0, gt=0, description="How long a hang lasts at most.")
    stream_chunk_delay_s: float = Field(default=0.005, ge=0, description="Between SSE deltas.")
    batch_processing_s: float = Field(
        default=2.0, ge=0, description="Time a Message Batch takes to process in the background."
    )
    batch_error_rate: float = Field(default=0.0, ge=0, le=1, description="Errored batch items.")
    cache_ttl_s: float = Field(
        default=300.0, gt=0, description='Lifetime of a "5m" prompt cache entry (after last use).'
    )
    cache_ttl_1h_s: float = Field(
        default=3600.0, gt=0, description='Lifetime of a "1h" prompt cache entry (after last use).'
    )
    min_cacheable_tokens: dict[str, int] = Field(
        default_factory=lambda: dict(MIN_CACHEABLE_TOKENS),
        description="Minimum cacheable prefix per model alias (see devtools.sim.cache).",
    )
    default_min_cacheable_tokens: int = Field(
        default=DEFAULT_MIN_CACHEABLE_TOKENS, ge=0, description="Minimum for unknown models."
    )
    output_token_latency_s: float = Field(
        default=0.0, ge=0, description="Added latency per output token (decode time)."
    )
    seed: int | None = Field(default=None, description="Seed of the fault/latency draws.")

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        total = (
            self.rate_429
            + self.rate_529
            + self.rate_500
            + self.rate_hang
            + self.rate_malformed
            + self.rate_refusal
        )
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:.3f} > 1")
        if self.latency_p99_s and self.latency_p99_s < self.latency_p50_s:
            raise ValueError("latency_p99_s must be >= latency_p50_s")
        return self

    def updated(self, changes: dict[str, Any]) -> SimConfig:
        """A validated copy with ``changes`` applied."""
        return SimConfig.model_validate({**self.model_dump(), **changes})


class FaultDraw:
    """Draws each request's fault and latency from a :class:`SimConfig`."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def fault(self, config: SimConfig, forced: str | None) -> Fault:
        """The request's fault: forced by header, else drawn from the configured rates."""
        if forced:
            return Fault(forced)
        u = self._rng.random()
        for fault, rate in (
            (Fault.RATE_LIMIT, config.rate_429),
            (Fault.OVERLOADED, config.rate_529),
            (Fault.SERVER_ERROR, config.rate_500),
            (Fault.HANG, config.rate_hang),
        ):
            if u < rate:
                return fault
            u -= rate
        if u < config.rate_malformed:
            return self._rng.choice(MALFORMED)
        u -= config.rate_malformed
        if u < config.rate_refusal:
            return self._rng.choice((Fault.REFUSAL, Fault.REFUSAL_TEXT))
        return Fault.NONE

    def latency(self, config: SimConfig, fault: Fault, forced_ms: str | None) -> float:
        """Seconds to wait before answering: forced, quick for errors, else lognormal."""
        if forced_ms:
            return max(0.0, float(forced_ms) / 1000.0)
        if fault in QUICK:
            return config.error_latency_s
        if config.latency_p50_s <= 0:
            return 0.0
        if config.latency_p99_s <= config.latency_p50_s:
            return config.latency_p50_s
        sigma = math.log(config.latency_p99_s / config.latency_p50_s) / _Z99
        return self._rng.lognormvariate(math.log(config.latency_p50_s), sigma)

    def chance(self, rate: float) -> bool:
        return self._rng.random() < rate
