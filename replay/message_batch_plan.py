"""Message Batches requests, planned (pure): their sizes, the batches they are cut into within the
API's limits (count and bytes), and the tokens they are expected to use (dry runs)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from pipeline.core.frontier_answer import tool_schema
from pipeline.frontier.prompt import POLICY, user_turn

#: Rough prompt size in tokens (system policy + tool schema), for dry-run estimates.
CHARS_PER_TOKEN = 4
EXPECTED_OUTPUT_TOKENS = 120


def request_overhead_bytes(max_rationale_chars: int) -> int:
    """Bytes every batch request carries besides the post: policy, tool schema, JSON framing."""
    return len(POLICY.encode()) + len(json.dumps(tool_schema(max_rationale_chars))) + 1024


def request_bytes(text: str, overhead: int) -> int:
    return overhead + len(json.dumps(user_turn(text)).encode())


def estimate_tokens(text: str) -> tuple[int, int]:
    """(input, output) tokens one verdict request is expected to use."""
    prompt = len(POLICY) + len(user_turn(text))
    return max(prompt // CHARS_PER_TOKEN, 1), EXPECTED_OUTPUT_TOKENS


def count_estimate(texts: Mapping[str, str] | Sequence[str]) -> tuple[int, int]:
    """Expected (input, output) tokens of sending ``texts`` (dry runs)."""
    values = texts.values() if isinstance(texts, Mapping) else texts
    total_in = total_out = 0
    for text in values:
        tin, tout = estimate_tokens(text)
        total_in += tin
        total_out += tout
    return total_in, total_out


def plan_batches(sizes: Sequence[int], *, max_requests: int, max_bytes: int) -> list[range]:
    """Cut requests (given their byte sizes, in order) into batches within both limits.

    A single request larger than ``max_bytes`` is a batch of its own (the API will reject it
    and the record goes to review)."""
    if max_requests < 1 or max_bytes < 1:
        raise ValueError("batch limits must be positive")
    batches: list[range] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_requests or used + size > max_bytes):
            batches.append(range(start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches
