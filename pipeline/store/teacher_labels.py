"""Export of the system's own decisions as teacher labels (JSONL) for ``model train --with-labels``.

Two sources, each line saying which (see :mod:`classifiers.teacher` for how training uses them):

- ``human``: reviewer decisions (``labeled_examples``: the text was copied when decided);
- ``frontier``: verdicts the frontier model gave in real time (stage ``frontier``) or through
  Message Batches (stage ``batch`` with provider tokens; a replay's re-scores have none), joined
  with the post's text. Escalations and fallbacks are not labels. Verdicts from before the cost
  ledger (migration 0006) carry no tokens and are not exported;
- ``frontier`` marked ``"audit": true``: the answers of the nightly audit of real-time ``allow``
  decisions (``audit_samples``, :mod:`replay.audit_sample`), the traffic the classifier gets
  wrong as well as right. A removal's batch decision is exported once, as the audit's label.

Simulated answers (``verdicts.simulated``) are left out unless ``include_simulated``; when asked
for, they are exported marked ``"simulated": true`` and training still skips them by default.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TextIO

import asyncpg

from classifiers.teacher import PROVENANCE_WEIGHT
from pipeline.store.errors import translated

_HUMAN = """
SELECT decision_id, post_id, text, categories, verdict, decided_at, reviewer,
       reason AS review_reason
FROM labeled_examples
WHERE ($1::timestamptz IS NULL OR decided_at >= $1)
ORDER BY decided_at, decision_id
"""

_FRONTIER = """
SELECT v.decision_id, v.post_id, p.text, v.categories, v.verdict, v.decided_at, v.stage,
       v.model_version, v.policy_version, v.simulated
FROM verdicts v JOIN posts p ON p.post_id = v.post_id
WHERE v.stage IN ('frontier', 'batch') AND v.verdict IN ('allow', 'remove')
  AND v.input_tokens + v.cache_read_tokens + v.cache_write_tokens > 0
  AND ($1::timestamptz IS NULL OR v.decided_at >= $1)
  AND ($2 OR NOT v.simulated)
  AND NOT EXISTS (SELECT 1 FROM audit_samples a WHERE a.decision_id = v.decision_id)
ORDER BY v.decided_at, v.decision_id
"""

_AUDIT = """
SELECT a.post_id, p.text, a.categories, a.frontier_verdict AS verdict, a.audited_at,
       coalesce(a.decision_id, a.source_decision_id) AS decision_id, a.frontier_model,
       a.policy_version, a.stratum, a.inclusion_probability, a.simulated
FROM audit_samples a JOIN posts p ON p.post_id = a.post_id
WHERE a.frontier_verdict IN ('allow', 'remove')
  AND ($1::timestamptz IS NULL OR a.audited_at >= $1)
  AND ($2 OR NOT a.simulated)
ORDER BY a.audited_at, a.post_id
"""


def _line(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False) + "\n"


def _label(row: asyncpg.Record, provenance: str, decided_at: datetime, **extra: Any) -> str:
    """One label line: the fields every provenance shares, then ``extra``."""
    return _line(
        {
            "post_id": row["post_id"],
            "text": row["text"],
            "verdict": row["verdict"],
            "categories": list(row["categories"]),
            "provenance": provenance,
            "weight": PROVENANCE_WEIGHT[provenance],
            "decided_at": decided_at.isoformat(),
            "decision_id": row["decision_id"],
            **extra,
        }
    )


async def export_teacher_labels(
    pool: asyncpg.Pool,
    out: TextIO,
    *,
    since: datetime | None = None,
    include_simulated: bool = False,
) -> dict[str, int]:
    """Write the labels; returns how many per provenance (and simulated ones written)."""
    counts = {"human": 0, "frontier": 0, "audit": 0, "simulated": 0}
    with translated():
        async with pool.acquire() as conn, conn.transaction():
            async for row in conn.cursor(_HUMAN, since, prefetch=500):
                out.write(
                    _label(
                        row,
                        "human",
                        row["decided_at"],
                        reviewer=row["reviewer"],
                        review_reason=row["review_reason"],
                        simulated=False,
                    )
                )
                counts["human"] += 1
            async for row in conn.cursor(_FRONTIER, since, include_simulated, prefetch=500):
                out.write(
                    _label(
                        row,
                        "frontier",
                        row["decided_at"],
                        stage=row["stage"],
                        model_version=row["model_version"],
                        policy_version=row["policy_version"],
                        simulated=row["simulated"],
                    )
                )
                counts["frontier"] += 1
                counts["simulated"] += int(row["simulated"])
            async for row in conn.cursor(_AUDIT, since, include_simulated, prefetch=500):
                out.write(
                    _label(
                        row,
                        "frontier",
                        row["audited_at"],
                        stage="batch",
                        model_version=row["frontier_model"],
                        policy_version=row["policy_version"],
                        simulated=row["simulated"],
                        audit=True,
                        audit_stratum=row["stratum"],
                        inclusion_probability=row["inclusion_probability"],
                    )
                )
                counts["frontier"] += 1
                counts["audit"] += 1
                counts["simulated"] += int(row["simulated"])
    return counts
