"""Which posts a replay re-scores, as SQL (pure: builds text and arguments, runs nothing).

A run's selection is frozen when it starts: criteria are resolved to absolute values (time
window, model/policy versions, ``frozen_at``) and stored with the run, so a resumed run pages
through exactly the same posts. Pages are keyset-paginated by ``post_id``.

Hashes are computed in SQL from ``md5(post_id)`` so every process and shard agrees:
:func:`shard_of` and :func:`sample_key` are their Python twins (tests check both agree).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

#: Verdicts a post may have; categories are the policy's names.
SAMPLE_BUCKETS = 1_000_000

# 60 bits of md5 as a non-negative bigint (15 hex digits), the same in SQL and Python.
_SHARD_HASH_SQL = "('x' || substr(md5(p.post_id), 1, 15))::bit(60)::bigint"
_SAMPLE_HASH_SQL = "('x' || substr(md5('sample:' || p.post_id), 1, 15))::bit(60)::bigint"


def _hash60(value: str) -> int:
    return int(hashlib.md5(value.encode("utf-8"), usedforsecurity=False).hexdigest()[:15], 16)


def shard_of(post_id: str, count: int) -> int:
    """The shard (``0 <= shard < count``) that owns ``post_id``; equals the SQL expression."""
    if count < 1:
        raise ValueError("shard count must be >= 1")
    return _hash60(post_id) % count


def sample_key(post_id: str) -> int:
    """Bucket of ``post_id`` in ``[0, SAMPLE_BUCKETS)``; a sample of ``f`` keeps keys < f*B."""
    return _hash60("sample:" + post_id) % SAMPLE_BUCKETS


def in_sample(post_id: str, fraction: float) -> bool:
    return sample_key(post_id) < sample_cutoff(fraction)


def sample_cutoff(fraction: float) -> int:
    if not 0.0 < fraction <= 1.0:
        raise ValueError("sample fraction must be in (0, 1]")
    return round(fraction * SAMPLE_BUCKETS)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``; raises ``ValueError`` with a hint."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"expected i/n such as 0/4, got {text!r}")
    i, n = int(index), int(count)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard index must be in 0..{n - 1} and count >= 1, got {text!r}")
    return i, n


@dataclass(frozen=True, slots=True)
class Selection:
    """Resolved, frozen criteria of one run (stored as JSON in ``replay_runs.params``)."""

    frozen_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    stored_after: datetime | None = None  # --since-last-run: posts stored after that run froze
    stale: bool = False
    model_version: str = ""
    policy_version: str = ""
    current_versions: tuple[str, ...] = ()  # model versions that are not stale (classifier, LLM…)
    category: str | None = None
    sample: float | None = None
    shard_index: int = 0
    shard_count: int = 1
    id_prefix: str | None = None  # narrows a run to ids with this prefix (tests, backfills)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("frozen_at", "since", "until", "stored_after"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        out["current_versions"] = list(self.current_versions)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        values = dict(data)
        for key in ("frozen_at", "since", "until", "stored_after"):
            if values.get(key) is not None:
                values[key] = datetime.fromisoformat(values[key])
        values["current_versions"] = tuple(values.get("current_versions") or ())
        return cls(**values)


_COLUMNS = """p.post_id, p.text, p.ingested_at,
       cv.verdict AS prev_verdict, cv.stage AS prev_stage, cv.model_version AS prev_model,
       cv.policy_version AS prev_policy, cv.decision_id AS prev_decision_id,
       pv.scores AS prev_scores"""

_FROM = """FROM posts p
LEFT JOIN current_verdicts cv ON cv.post_id = p.post_id
LEFT JOIN verdicts pv ON pv.decision_id = cv.decision_id"""


def where_clause(sel: Selection, args: list[Any]) -> str:
    """The ``WHERE`` conditions of ``sel``; appends parameters to ``args`` ($n placeholders)."""

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    conds = [f"p.stored_at <= {arg(sel.frozen_at)}"]
    if sel.since is not None:
        conds.append(f"p.ingested_at >= {arg(sel.since)}")
    if sel.until is not None:
        conds.append(f"p.ingested_at < {arg(sel.until)}")
    if sel.stored_after is not None:
        conds.append(f"p.stored_at > {arg(sel.stored_after)}")
    if sel.id_prefix:
        escaped = sel.id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(f"p.post_id LIKE {arg(escaped + '%')}")
    if sel.stale:
        conds.append(
            "(cv.post_id IS NULL OR (cv.stage <> 'human' AND "
            f"(cv.policy_version <> {arg(sel.policy_version)} "
            f"OR NOT (cv.model_version = ANY({arg(list(sel.current_versions))}::text[])))))"
        )
    if sel.category is not None:
        conds.append(f"{arg(sel.category)} = ANY(pv.categories)")
    if sel.sample is not None and sel.sample < 1.0:
        conds.append(f"{_SAMPLE_HASH_SQL} % {SAMPLE_BUCKETS} < {arg(sample_cutoff(sel.sample))}")
    if sel.shard_count > 1:
        conds.append(f"{_SHARD_HASH_SQL} % {arg(sel.shard_count)} = {arg(sel.shard_index)}")
    return " AND ".join(conds)


def page_query(sel: Selection, *, after: str | None, limit: int) -> tuple[str, list[Any]]:
    """One keyset page: posts of ``sel`` with ``post_id > after``, ordered, at most ``limit``."""
    args: list[Any] = []
    where = where_clause(sel, args)
    if after is not None:
        args.append(after)
        where += f" AND p.post_id > ${len(args)}"
    args.append(limit)
    sql = f"SELECT {_COLUMNS}\n{_FROM}\nWHERE {where}\nORDER BY p.post_id\nLIMIT ${len(args)}"
    return sql, args


def count_query(sel: Selection, *, after: str | None = None) -> tuple[str, list[Any]]:
    """How many posts of ``sel`` lie after ``after`` (for the progress bar)."""
    args: list[Any] = []
    where = where_clause(sel, args)
    if after is not None:
        args.append(after)
        where += f" AND p.post_id > ${len(args)}"
    return f"SELECT count(*)\n{_FROM}\nWHERE {where}", args
