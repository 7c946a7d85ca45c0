"""Selection SQL builder and shard/sample math (pure)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from replay.selection import (
    Selection,
    count_query,
    in_sample,
    page_query,
    parse_shard,
    sample_cutoff,
    shard_of,
)

FROZEN = datetime(2024, 5, 1, tzinfo=UTC)


def test_parse_shard() -> None:
    assert parse_shard("3/8") == (3, 8)
    assert parse_shard("0/1") == (0, 1)
    for bad in ("8/8", "-1/4", "1", "a/b", "1/0", ""):
        with pytest.raises(ValueError, match=r"i/n|shard index"):
            parse_shard(bad)


def test_shards_partition_ids_evenly_and_stably() -> None:
    ids = [f"post-{i}" for i in range(8000)]
    owners = [shard_of(i, 8) for i in ids]
    counts = Counter(owners)
    assert set(counts) == set(range(8))
    assert all(800 < c < 1200 for c in counts.values())
    assert owners == [shard_of(i, 8) for i in ids]  # stable
    assert all(shard_of(i, 1) == 0 for i in ids[:50])
    with pytest.raises(ValueError):
        shard_of("x", 0)


def test_sample_is_deterministic_and_close_to_the_share() -> None:
    ids = [f"p{i}" for i in range(20_000)]
    kept = [i for i in ids if in_sample(i, 0.1)]
    assert 1700 < len(kept) < 2300
    assert kept == [i for i in ids if in_sample(i, 0.1)]
    assert set(i for i in ids if in_sample(i, 0.05)) <= set(kept)  # nested samples
    assert all(in_sample(i, 1.0) for i in ids[:100])
    with pytest.raises(ValueError):
        sample_cutoff(0.0)


def test_plain_window_query() -> None:
    sel = Selection(frozen_at=FROZEN, since=FROZEN, until=FROZEN)
    sql, args = page_query(sel, after=None, limit=100)
    assert "p.stored_at <= $1" in sql and "p.ingested_at >= $2" in sql
    assert "p.ingested_at < $3" in sql and sql.rstrip().endswith("LIMIT $4")
    assert args == [FROZEN, FROZEN, FROZEN, 100]
    assert "ORDER BY p.post_id" in sql


def test_keyset_cursor_and_every_filter() -> None:
    sel = Selection(
        frozen_at=FROZEN,
        stale=True,
        model_version="m2",
        policy_version="p2",
        current_versions=("m2", "claude"),
        category="toxic",
        sample=0.25,
        shard_index=2,
        shard_count=4,
        id_prefix="t_1%",
    )
    sql, args = page_query(sel, after="abc", limit=10)
    assert "cv.post_id IS NULL" in sql and "cv.stage <> 'human'" in sql
    assert "= ANY(pv.categories)" in sql
    assert "md5('sample:' || p.post_id)" in sql and "md5(p.post_id)" in sql
    assert "p.post_id > $" in sql
    assert args[-2:] == ["abc", 10]
    assert "t\\_1\\%%" in args  # LIKE wildcards in the prefix are escaped
    assert ["m2", "claude"] in args and 250_000 in args and 4 in args and 2 in args
    count_sql, count_args = count_query(sel, after="abc")
    assert count_sql.startswith("SELECT count(*)") and count_args == args[:-1]


def test_full_sample_and_single_shard_add_no_condition() -> None:
    sql, _ = page_query(Selection(frozen_at=FROZEN, sample=1.0), after=None, limit=1)
    assert "md5" not in sql


def test_selection_json_round_trip() -> None:
    sel = Selection(frozen_at=FROZEN, since=FROZEN, current_versions=("a", "b"), sample=0.5)
    assert Selection.from_json(sel.to_json()) == sel
