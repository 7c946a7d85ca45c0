"""Export of reviewer decisions as labeled examples (JSONL) for retraining."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TextIO

import asyncpg

_SELECT = """
SELECT decision_id, item_id, post_id, text, categories, verdict, reviewer, reason, decided_at
FROM labeled_examples
WHERE ($1::timestamptz IS NULL OR decided_at >= $1)
ORDER BY decided_at, decision_id
"""


async def export_labels(pool: asyncpg.Pool, out: TextIO, *, since: datetime | None = None) -> int:
    """Write one JSON object per line (post text, labels, verdict, reviewer, decided_at)."""
    written = 0
    async with pool.acquire() as conn, conn.transaction():
        async for row in conn.cursor(_SELECT, since, prefetch=500):
            document = {
                "post_id": row["post_id"],
                "text": row["text"],
                "labels": list(row["categories"]),
                "verdict": row["verdict"],
                "reviewer": row["reviewer"],
                "decided_at": row["decided_at"].isoformat(),
                "decision_id": row["decision_id"],
                "review_item_id": row["item_id"],
                "review_reason": row["reason"],
            }
            out.write(json.dumps(document, ensure_ascii=False) + "\n")
            written += 1
    return written
