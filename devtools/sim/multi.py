"""The simulator's answer to a several-posts request (``record_verdicts``), by rule.

Each ``<post id="...">`` ... ``</post>`` of the user turn is judged alone with
:func:`devtools.sim.rules.judge`. Content faults hit the first item (a missing field, a bad
enum, an out-of-range confidence) or the whole input (malformed JSON), as for one post.
"""

from __future__ import annotations

import re
from typing import Any

from devtools.sim.faults import Fault
from devtools.sim.rules import judge

MULTI_TOOL = "record_verdicts"
_POST = re.compile(r'<post id="([A-Za-z0-9_-]{1,64})">\n(.*?)\n</post>', re.DOTALL)


def posts_of(user_text: str) -> list[tuple[str, str]]:
    """``(id, escaped text)`` of every delimited post in a several-posts user turn."""
    return _POST.findall(user_text)


def multi_tool_input(user_text: str, fault: Fault, rationale_limit: int) -> Any:
    """The ``record_verdicts`` input for the posts in ``user_text`` under ``fault``."""
    if fault is Fault.MALFORMED_JSON:
        return '{"verdicts": [{"post_id": "p1", "verdict": "allow"'
    items: list[dict[str, Any]] = []
    for post_id, text in posts_of(user_text):
        v = judge(text)
        items.append(
            {
                "post_id": post_id,
                "verdict": v.verdict,
                "categories": v.categories,
                "confidence": v.confidence,
                "rationale": v.rationale(rationale_limit),
            }
        )
    if items and fault is Fault.MISSING_FIELD:
        del items[0]["verdict"]
    elif items and fault is Fault.BAD_ENUM:
        items[0]["verdict"] = "approve"
    elif items and fault is Fault.OUT_OF_RANGE:
        items[0]["confidence"] = 1.7
    return {"verdicts": items}
