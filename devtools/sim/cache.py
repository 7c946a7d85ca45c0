"""The simulator's prompt cache: per-model minimum, 5-minute and 1-hour lifetimes (pure).

It follows Anthropic's documented behaviour (prompt-caching guide, see :data:`SOURCE`):

- The cacheable prefix is ``tools`` then ``system`` up to and including the last block that
  carries ``cache_control`` (the simulator honours the last breakpoint only).
- A prefix shorter than the model's minimum cacheable length is **not cached**, silently: the
  whole prompt is plain input and both cache counters are 0 (:data:`MIN_CACHEABLE_TOKENS`).
- ``cache_control.ttl`` is ``"5m"`` (default) or ``"1h"``; anything else is a 400. An entry
  lives for its TTL after its last use (a read refreshes it at no cost).
- An entry can be read only once the response that wrote it has begun: requests that arrive
  while the first one is still in flight write it again (``ready_at``).
- Usage reports ``cache_creation_input_tokens`` (all writes), ``cache_read_input_tokens`` and
  the SDK's ``cache_creation`` breakdown (``ephemeral_5m_input_tokens``,
  ``ephemeral_1h_input_tokens``).

Token counts are the simulator's estimate, :func:`devtools.sim.rules.estimate_tokens`
(4 characters per token). Claude's tokenizer is not public; for English prose, JSON and
character references it yields more tokens per character than 4, so a prefix that crosses the
minimum by this estimate crosses it on the real API too, and real token counts (and cost) are
likely higher than the simulator's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devtools.sim.rules import estimate_tokens

if TYPE_CHECKING:
    from devtools.sim.faults import SimConfig
    from devtools.sim.messages import MessagesRequest

JSON = dict[str, Any]

SOURCE = "https://platform.claude.com/docs/en/build-with-claude/prompt-caching"
AS_OF = "2026-12-02"

#: Minimum cacheable prompt length per model alias (a dated id ``<alias>-YYYYMMDD`` matches its
#: alias). Figures as of :data:`AS_OF` from :data:`SOURCE` ("Cache limitations"), as quoted
#: verbatim from that page in anthropics/anthropic-sdk-python#1194; the page itself could not
#: be read from this machine. Not verified, so deliberately left to the default: Opus 4.7 and
#: 4.8 (third-party write-ups give 2,048 and 1,024). Sonnet 4.6: the quoted docs say 1,024, a
#: gateway's copy of the table (docs.orq.ai) and the user report in that issue say 2,048; the
#: simulator takes the larger (conservative: it never reports a cache the API may not give).
MIN_CACHEABLE_TOKENS: dict[str, int] = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4-0": 1024,
    "claude-opus-4": 1024,
    "claude-sonnet-4-0": 1024,
    "claude-sonnet-4": 1024,
    "claude-3-7-sonnet": 1024,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
#: Unknown models: the largest documented minimum, so the simulator is never optimistic.
DEFAULT_MIN_CACHEABLE_TOKENS = 4096

TTL_NAMES = ("5m", "1h")


class CacheRequestError(ValueError):
    """A ``cache_control`` the API would reject (400)."""


def min_cacheable(model: str, table: dict[str, int], default: int) -> int:
    """The model's minimum: exact alias, else its alias without a ``-YYYYMMDD`` suffix."""
    if model in table:
        return table[model]
    alias, _, suffix = model.rpartition("-")
    if suffix.isdigit() and len(suffix) == 8 and alias in table:
        return table[alias]
    return default


@dataclass(slots=True)
class _Entry:
    ready_at: float
    expires_at: float


def _breakpoint(req: MessagesRequest) -> tuple[str, str] | None:
    """(prefix text, ttl) up to the last ``cache_control`` in tools then system, or None."""
    tools = [t for t in (req.raw.get("tools") or []) if isinstance(t, dict)]
    blocks: list[tuple[str, JSON]] = [(json.dumps(t, sort_keys=True), t) for t in tools]
    blocks += [(str(b.get("text", "")), b) for b in req.system_blocks]
    last = -1
    for i, (_, block) in enumerate(blocks):
        if block.get("cache_control"):
            last = i
    if last < 0:
        return None
    control = blocks[last][1]["cache_control"]
    ttl = control.get("ttl", "5m") if isinstance(control, dict) else None
    if ttl not in TTL_NAMES:
        raise CacheRequestError(f"cache_control.ttl must be one of {list(TTL_NAMES)}")
    return "".join(text for text, _ in blocks[: last + 1]), str(ttl)


def check_cache_control(req: MessagesRequest) -> None:
    """Raise :class:`CacheRequestError` for a ``cache_control`` the API would reject."""
    _breakpoint(req)


class PromptCache:
    """Remembers cacheable prompt prefixes per model and reports usage as the API does."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def clear(self) -> None:
        self._entries.clear()

    def usage(
        self, req: MessagesRequest, config: SimConfig, *, now: float, ready_at: float | None = None
    ) -> JSON:
        """Input-side usage of ``req`` at ``now``; a write becomes readable at ``ready_at``."""
        tools = [t for t in (req.raw.get("tools") or []) if isinstance(t, dict)]
        tools_text = "".join(json.dumps(t, sort_keys=True) for t in tools)
        system_text = "".join(str(b.get("text", "")) for b in req.system_blocks)
        total = estimate_tokens(tools_text + system_text + req.user_text)
        plain = _usage(total, 0, 0, "5m")
        found = _breakpoint(req)
        if found is None:
            return plain
        prefix, ttl = found
        prefix_tokens = min(total, estimate_tokens(prefix))
        minimum = min_cacheable(
            req.model, config.min_cacheable_tokens, config.default_min_cacheable_tokens
        )
        if prefix_tokens < minimum:
            return plain
        ttl_s = config.cache_ttl_s if ttl == "5m" else config.cache_ttl_1h_s
        key = hashlib.sha256(f"{req.model}\x1f{ttl}\x1f{prefix}".encode()).hexdigest()
        entry = self._entries.get(key)
        hit = entry is not None and entry.ready_at <= now < entry.expires_at
        if hit and entry is not None:
            entry.expires_at = now + ttl_s
            return _usage(total - prefix_tokens, 0, prefix_tokens, ttl)
        ready = now if ready_at is None else max(now, ready_at)
        if entry is not None and entry.ready_at > now:  # an earlier write is still in flight
            ready = min(ready, entry.ready_at)
        self._entries[key] = _Entry(ready_at=ready, expires_at=ready + ttl_s)
        return _usage(total - prefix_tokens, prefix_tokens, 0, ttl)


def _usage(uncached: int, written: int, read: int, ttl: str) -> JSON:
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written if ttl == "5m" else 0,
            "ephemeral_1h_input_tokens": written if ttl == "1h" else 0,
        },
    }
