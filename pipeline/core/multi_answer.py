"""Several posts in one call: the ``record_verdicts`` tool and its strict parsing (pure).

The request names each post with a local id (``p1``, ``p2``, ...; never user text). The model
answers with one ``record_verdicts`` call whose ``verdicts`` array holds one verdict object per
post: ``post_id`` plus the four fields of a single verdict (:mod:`pipeline.core.frontier_answer`).

:func:`parse_verdicts` maps each verdict to its post. A post gets a valid answer only if exactly
one item names it and that item passes :func:`~pipeline.core.frontier_answer.parse_answer`.
Missing ids, duplicated ids (every copy is discarded: which one is meant is unknown) and invalid
items are :class:`InvalidAnswerError` for those posts; items naming no requested post (extra
ids, non-objects, ids that are not strings) are counted and dropped. An input that is not an
object with exactly a ``verdicts`` array is invalid for every post.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.frontier_answer import (
    FrontierAnswer,
    InvalidAnswerError,
    parse_answer,
    tool_schema,
)

MULTI_TOOL_NAME = "record_verdicts"


def multi_tool_schema(max_rationale_chars: int) -> dict[str, Any]:
    """JSON Schema of the ``record_verdicts`` input (independent of how many posts are sent,
    so the tool definition, part of the cached prefix, never changes)."""
    item = tool_schema(max_rationale_chars)
    item = {
        **item,
        "required": ["post_id", *item["required"]],
        "properties": {
            "post_id": {"type": "string", "description": "The id of the <post> judged."},
            **item["properties"],
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["verdicts"],
        "properties": {
            "verdicts": {
                "type": "array",
                "items": item,
                "description": "Exactly one verdict per post in the request, each naming its "
                "post_id.",
            }
        },
    }


@dataclass(frozen=True, slots=True)
class ParsedVerdicts:
    """Per requested id: its answer or why it has none; and how many items were dropped."""

    answers: dict[str, FrontierAnswer | InvalidAnswerError]
    dropped_items: int


def parse_verdicts(
    tool_input: object, ids: Sequence[str], *, max_rationale_chars: int
) -> ParsedVerdicts:
    """Validate a ``record_verdicts`` input against the requested ``ids`` (see module doc)."""
    if len(set(ids)) != len(ids):
        raise ValueError("requested ids must be unique")
    if not isinstance(tool_input, dict) or set(tool_input) != {"verdicts"}:
        whole = InvalidAnswerError("record_verdicts input must be an object with only 'verdicts'")
        return ParsedVerdicts({i: whole for i in ids}, 0)
    items = tool_input["verdicts"]
    if not isinstance(items, list):
        whole = InvalidAnswerError("'verdicts' must be an array")
        return ParsedVerdicts({i: whole for i in ids}, 0)
    wanted = set(ids)
    named: list[tuple[str, dict[str, Any]]] = []
    dropped = 0
    for item in items:
        post_id = item.get("post_id") if isinstance(item, dict) else None
        if isinstance(post_id, str) and post_id in wanted:
            named.append((post_id, item))
        else:
            dropped += 1
    counts = Counter(post_id for post_id, _ in named)
    answers: dict[str, FrontierAnswer | InvalidAnswerError] = {
        i: InvalidAnswerError(f"no verdict for post {i}") for i in ids if counts[i] == 0
    }
    for post_id, item in named:
        if counts[post_id] > 1:
            answers[post_id] = InvalidAnswerError(f"{counts[post_id]} verdicts for post {post_id}")
            continue
        fields = {k: v for k, v in item.items() if k != "post_id"}
        try:
            answers[post_id] = parse_answer(fields, max_rationale_chars=max_rationale_chars)
        except InvalidAnswerError as exc:
            answers[post_id] = exc
    return ParsedVerdicts({i: answers[i] for i in ids}, dropped)
