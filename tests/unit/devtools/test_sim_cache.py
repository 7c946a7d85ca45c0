"""The simulator's prompt cache: per-model minimum, write then read, TTL expiry, in-flight writes."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.sim.cache import (
    DEFAULT_MIN_CACHEABLE_TOKENS,
    MIN_CACHEABLE_TOKENS,
    PromptCache,
    min_cacheable,
)
from devtools.sim.faults import SimConfig
from devtools.sim.messages import MessagesRequest, SimRequestError, parse_request

CONFIG = SimConfig()


def _request(
    system_chars: int, *, model: str = "claude-haiku-4-5", ttl: str | None = None
) -> MessagesRequest:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl is not None:
        control["ttl"] = ttl
    return parse_request(
        {
            "model": model,
            "max_tokens": 100,
            "system": [{"type": "text", "text": "x" * system_chars, "cache_control": control}],
            "messages": [{"role": "user", "content": "<post>\nhello\n</post>"}],
        }
    )


def _no_cache(usage: dict[str, Any]) -> bool:
    return (
        usage["cache_creation_input_tokens"] == 0
        and usage["cache_read_input_tokens"] == 0
        and usage["cache_creation"]
        == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    )


def test_the_table_has_the_documented_figures_and_a_conservative_default() -> None:
    assert MIN_CACHEABLE_TOKENS["claude-haiku-4-5"] == 4096
    assert MIN_CACHEABLE_TOKENS["claude-sonnet-4-5"] == 1024
    assert MIN_CACHEABLE_TOKENS["claude-3-5-haiku"] == 2048
    assert max(MIN_CACHEABLE_TOKENS.values()) == DEFAULT_MIN_CACHEABLE_TOKENS
    table = CONFIG.min_cacheable_tokens
    assert min_cacheable("claude-haiku-4-5-20251001", table, 7) == 4096  # dated id → alias
    assert min_cacheable("claude-opus-4-1", table, 7) == 1024
    assert min_cacheable("claude-opus-4", table, 7) == 1024
    assert min_cacheable("some-new-model", table, 7) == 7
    assert min_cacheable("claude-haiku-4-5-preview", table, 7) == 7


def test_a_prefix_below_the_minimum_is_plain_input_every_time() -> None:
    cache = PromptCache()
    req = _request(4000 * 4)  # ~4,000 tokens < 4,096 for Haiku 4.5
    first = cache.usage(req, CONFIG, now=0.0)
    second = cache.usage(req, CONFIG, now=1.0)
    assert _no_cache(first) and _no_cache(second)
    assert first["input_tokens"] == second["input_tokens"] > 4000


def test_the_same_prefix_is_cached_for_a_model_with_a_lower_minimum() -> None:
    cache = PromptCache()
    req = _request(4000 * 4, model="claude-sonnet-4-5")
    assert cache.usage(req, CONFIG, now=0.0)["cache_creation_input_tokens"] == 4000
    assert cache.usage(req, CONFIG, now=1.0)["cache_read_input_tokens"] == 4000


def test_above_the_minimum_the_first_call_writes_and_the_next_reads() -> None:
    cache = PromptCache()
    req = _request(5000 * 4)
    first = cache.usage(req, CONFIG, now=0.0)
    second = cache.usage(req, CONFIG, now=10.0)
    assert first["cache_creation_input_tokens"] >= 5000 and first["cache_read_input_tokens"] == 0
    assert (
        first["cache_creation"]["ephemeral_5m_input_tokens"] == first["cache_creation_input_tokens"]
    )
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] == first["input_tokens"]  # the user turn is never cached


@pytest.mark.parametrize(("ttl", "lifetime"), [(None, 300.0), ("5m", 300.0), ("1h", 3600.0)])
def test_an_entry_expires_its_ttl_after_its_last_use(ttl: str | None, lifetime: float) -> None:
    cache = PromptCache()
    req = _request(5000 * 4, ttl=ttl)
    written = cache.usage(req, CONFIG, now=0.0)
    kind = "ephemeral_1h_input_tokens" if ttl == "1h" else "ephemeral_5m_input_tokens"
    assert written["cache_creation"][kind] == written["cache_creation_input_tokens"] > 0
    # A read just before expiry refreshes the lifetime; a call after it writes again.
    assert cache.usage(req, CONFIG, now=lifetime - 1)["cache_read_input_tokens"] > 0
    assert cache.usage(req, CONFIG, now=2 * lifetime - 2)["cache_read_input_tokens"] > 0
    expired = cache.usage(req, CONFIG, now=3 * lifetime)
    assert expired["cache_read_input_tokens"] == 0 and expired["cache_creation_input_tokens"] > 0


def test_5m_and_1h_entries_are_separate() -> None:
    cache = PromptCache()
    cache.usage(_request(5000 * 4, ttl="5m"), CONFIG, now=0.0)
    assert (
        cache.usage(_request(5000 * 4, ttl="1h"), CONFIG, now=1.0)["cache_read_input_tokens"] == 0
    )


def test_requests_while_the_first_write_is_in_flight_write_again() -> None:
    cache = PromptCache()
    req = _request(5000 * 4)
    assert cache.usage(req, CONFIG, now=0.0, ready_at=1.5)["cache_creation_input_tokens"] > 0
    assert cache.usage(req, CONFIG, now=1.0, ready_at=2.5)["cache_creation_input_tokens"] > 0
    assert cache.usage(req, CONFIG, now=1.6)["cache_read_input_tokens"] > 0


def test_no_cache_control_means_no_cache() -> None:
    req = parse_request(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 10,
            "system": "x" * 40_000,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert _no_cache(PromptCache().usage(req, CONFIG, now=0.0))


def test_an_unknown_ttl_is_rejected_like_the_api_does() -> None:
    with pytest.raises(SimRequestError) as caught:
        _request(100, ttl="2h")
    assert caught.value.status == 400
