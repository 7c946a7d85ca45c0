"""Audit sampling in Postgres: the allowed decisions a nightly audit pages through, its stored
results (``audit_samples``, migration 0011), and the estimates read back.

The public read is :func:`audit_estimates` (the lead dashboard's ``/api/lead/audit`` and
``modstream model compare`` call it): the prevalence of violating content among allowed posts and
the classifier's false-negative rate, per UTC day and category, with intervals
(:mod:`pipeline.core.audit_estimates`). Every function raises the pipeline's error taxonomy
(:func:`pipeline.store.errors.translated`), never asyncpg's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from pipeline.core.audit_estimates import AuditedRow, estimates_document
from pipeline.core.audit_sampling import ANY, DEFAULT_EDGES, Z_95
from pipeline.store.errors import translated

__all__ = [
    "AllowedDecision",
    "AuditResult",
    "allowed_page",
    "audit_estimates",
    "post_texts",
    "save_results",
]


@dataclass(frozen=True, slots=True)
class AllowedDecision:
    """A real-time ``allow`` decision that has not been audited yet."""

    decision_id: str
    post_id: str
    scores: dict[str, float]
    decided_at: datetime
    ingested_at: datetime
    model_version: str
    policy_version: str


@dataclass(frozen=True, slots=True)
class AuditResult:
    """One audited post: the frontier model's answer (``error`` when it gave none)."""

    post_id: str
    source_decision_id: str
    decided_at: datetime
    top_score: float
    stratum: int
    inclusion_probability: float
    model_version: str
    policy_version: str
    frontier_model: str
    frontier_verdict: str
    categories: tuple[str, ...]
    rationale: str | None
    decision_id: str | None
    cost_usd: float
    input_tokens: int
    output_tokens: int
    simulated: bool


def _scores(value: Any) -> dict[str, float]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float)}


_ALLOWED = """
SELECT v.decision_id, v.post_id, v.scores, v.decided_at, v.ingested_at, v.model_version,
       v.policy_version
FROM verdicts v
WHERE v.stage = 'realtime' AND v.verdict = 'allow'
  AND v.decided_at >= $1 AND v.decided_at < $2
  AND ($3::text IS NULL OR v.post_id LIKE $3)
  AND ($4::text IS NULL OR v.decision_id > $4)
  AND NOT EXISTS (SELECT 1 FROM audit_samples a WHERE a.post_id = v.post_id)
ORDER BY v.decision_id
LIMIT $5
"""


async def allowed_page(
    pool: asyncpg.Pool,
    *,
    since: datetime,
    until: datetime,
    after: str | None,
    limit: int,
    id_prefix: str | None = None,
) -> list[AllowedDecision]:
    """One keyset page (by decision id) of the window's real-time allow decisions whose post
    has not been audited; ``id_prefix`` narrows it to post ids with that prefix (tests)."""
    pattern = None
    if id_prefix:
        pattern = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with translated():
        rows = await pool.fetch(_ALLOWED, since, until, pattern, after, limit)
    return [
        AllowedDecision(
            decision_id=r["decision_id"],
            post_id=r["post_id"],
            scores=_scores(r["scores"]),
            decided_at=r["decided_at"],
            ingested_at=r["ingested_at"],
            model_version=r["model_version"],
            policy_version=r["policy_version"],
        )
        for r in rows
    ]


async def post_texts(pool: asyncpg.Pool, post_ids: Sequence[str]) -> dict[str, str]:
    """The stored text of each post (posts without a stored text are left out)."""
    with translated():
        rows = await pool.fetch(
            "SELECT post_id, text FROM posts WHERE post_id = ANY($1::text[])", list(post_ids)
        )
    return {r["post_id"]: r["text"] for r in rows}


_INSERT = """
INSERT INTO audit_samples (post_id, source_decision_id, decided_at, top_score, stratum,
    inclusion_probability, model_version, policy_version, frontier_model, frontier_verdict,
    categories, rationale, decision_id, cost_usd, input_tokens, output_tokens, simulated)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (post_id) DO NOTHING
"""


async def save_results(conn: asyncpg.Connection, results: Sequence[AuditResult]) -> None:
    """Store audit results in the caller's transaction (a post already audited is kept)."""
    with translated():
        await conn.executemany(
            _INSERT,
            [
                (
                    r.post_id,
                    r.source_decision_id,
                    r.decided_at,
                    r.top_score,
                    r.stratum,
                    r.inclusion_probability,
                    r.model_version,
                    r.policy_version,
                    r.frontier_model,
                    r.frontier_verdict,
                    list(r.categories),
                    r.rationale,
                    r.decision_id,
                    r.cost_usd,
                    r.input_tokens,
                    r.output_tokens,
                    r.simulated,
                )
                for r in results
            ],
        )


_ALLOWED_COUNTS = """
SELECT (decided_at AT TIME ZONE 'UTC')::date AS day, width_bucket(top, $3::float8[]) AS stratum,
       count(*) AS n
FROM (SELECT decided_at,
             (SELECT coalesce(max(least(greatest(s.value::float8, 0), 1)), 0)
              FROM jsonb_each_text(scores) s) AS top
      FROM verdicts
      WHERE stage = 'realtime' AND verdict = 'allow' AND decided_at >= $1 AND decided_at < $2
     ) allowed
GROUP BY 1, 2
"""

_REMOVED_COUNTS = """
SELECT (decided_at AT TIME ZONE 'UTC')::date AS day, c AS category, count(*) AS n
FROM verdicts, unnest(categories || ARRAY[$3::text]) AS c
WHERE stage = 'realtime' AND verdict = 'remove' AND decided_at >= $1 AND decided_at < $2
GROUP BY 1, 2
"""

_AUDITED = """
SELECT (decided_at AT TIME ZONE 'UTC')::date AS day, stratum, inclusion_probability,
       frontier_verdict, categories, simulated
FROM audit_samples
WHERE decided_at >= $1 AND decided_at < $2 AND frontier_verdict <> 'error'
"""


async def audit_estimates(
    pool: asyncpg.Pool,
    since: datetime,
    until: datetime,
    *,
    edges: tuple[float, ...] = DEFAULT_EDGES,
    z: float = Z_95,
) -> dict[str, Any]:
    """Prevalence of violating content among allowed posts and the classifier's false-negative
    rate, per UTC day of the real-time decision and per category (``any``, then the policy's),
    with intervals, for decisions in ``[since, until)``.

    ``edges`` must be the bin edges the audits were sampled with (``MODSTREAM_AUDIT_EDGES``).
    Each estimate is a JSON object: ``allowed``, ``audited``, ``found``, ``removed``,
    ``violating_allowed``, ``prevalence`` / ``_low`` / ``_high`` and ``fn_rate`` / ``_low`` /
    ``_high`` (None where the sample cannot say). ``simulated`` counts audits answered by the
    API simulator: such figures measure the simulator's keyword rule, not the classifier.
    """
    with translated():
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            allowed_rows = await conn.fetch(_ALLOWED_COUNTS, since, until, list(edges))
            removed_rows = await conn.fetch(_REMOVED_COUNTS, since, until, ANY)
            audited_rows = await conn.fetch(_AUDITED, since, until)
    allowed: dict[tuple[date, int], int] = {
        (r["day"], int(r["stratum"])): int(r["n"]) for r in allowed_rows
    }
    removed = {(r["day"], str(r["category"])): int(r["n"]) for r in removed_rows}
    rows = [
        AuditedRow(
            day=r["day"],
            stratum=int(r["stratum"]),
            probability=float(r["inclusion_probability"]),
            verdict=r["frontier_verdict"],
            categories=tuple(r["categories"]),
            simulated=bool(r["simulated"]),
        )
        for r in audited_rows
    ]
    return estimates_document(
        since=since, until=until, allowed=allowed, removed=removed, rows=rows, edges=edges, z=z
    )
