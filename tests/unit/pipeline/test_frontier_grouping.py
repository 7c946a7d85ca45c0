"""Gathering borderline posts into shared provider calls (pure asyncio, no provider)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.deadline import Deadline
from pipeline.frontier.grouping import Pending, PostGrouper
from pipeline.frontier.outcomes import Outcome
from schemas import BorderlineRequest, DecisionEvent, Stage, Verdict

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _request(n: int, post_id: str | None = None) -> BorderlineRequest:
    return BorderlineRequest(
        post_id=post_id or f"post-{n}",
        text=f"borderline text {n}",
        author_id="author-1",
        scores={"toxic": 0.9},
        model_version="test-model",
        policy_version="test-policy",
        ingested_at=NOW,
        deadline_at=NOW + timedelta(seconds=5),
    )


def _deadline(left_s: float) -> Deadline:
    return Deadline(at=time.monotonic() + left_s, wall_at=NOW)


def _outcome(pending: Pending) -> Outcome:
    decision = DecisionEvent(
        decision_id=f"decision-{pending.request.post_id}",
        post_id=pending.request.post_id,
        verdict=Verdict.ALLOW,
        scores={},
        stage=Stage.FRONTIER,
        model_version="frontier",
        policy_version="test-policy",
        decided_at=NOW,
        ingested_at=NOW,
    )
    return Outcome(decision, None, pending.deadline, attempts=1, last_error=None)


class Recorder:
    """A ``decide_group`` that records each group and answers every post."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.groups: list[list[str]] = []
        self.started: list[float] = []
        self._delay_s = delay_s

    async def __call__(self, group: Sequence[Pending]) -> list[Outcome]:
        ids = [p.request.post_id for p in group]
        assert len(set(ids)) == len(ids), f"a post id twice in one call: {ids}"
        self.groups.append(ids)
        self.started.append(time.monotonic())
        await asyncio.sleep(self._delay_s)
        return [_outcome(p) for p in group]


def _grouper(decide: Recorder, *, size: int = 4, linger_s: float = 0.2) -> PostGrouper:
    return PostGrouper(
        decide, size=size, linger_s=linger_s, expected_call_s=1.0, clock=time.monotonic
    )


async def test_a_full_group_goes_out_at_once() -> None:
    decide = Recorder()
    grouper = _grouper(decide, size=4, linger_s=5.0)
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(grouper.submit(_request(n), _deadline(4.0)) for n in range(4))
    )
    assert time.monotonic() - started < 1.0  # nobody waited for the 5 s linger
    assert decide.groups == [["post-0", "post-1", "post-2", "post-3"]]
    assert [o.decision.post_id for o in outcomes] == [f"post-{n}" for n in range(4)]


async def test_a_lone_post_waits_the_linger_then_goes_alone() -> None:
    decide = Recorder()
    grouper = _grouper(decide, linger_s=0.2)
    started = time.monotonic()
    outcome = await grouper.submit(_request(0), _deadline(4.0))
    waited = decide.started[0] - started
    assert 0.15 <= waited < 1.0
    assert decide.groups == [["post-0"]]
    assert outcome.decision.post_id == "post-0"


async def test_a_late_post_does_not_wait_for_company() -> None:
    """Budget 1.05 s, expected call 1 s: it may wait 0.05 s at most, not the 2 s linger."""
    decide = Recorder()
    grouper = _grouper(decide, linger_s=2.0)
    early = asyncio.ensure_future(grouper.submit(_request(0), _deadline(4.0)))
    await asyncio.sleep(0)
    started = time.monotonic()
    await grouper.submit(_request(1), _deadline(1.05))
    assert decide.started[0] - started < 0.5
    assert decide.groups == [["post-0", "post-1"]]  # the early post rides along
    await early


async def test_more_posts_than_a_group_make_several_calls() -> None:
    decide = Recorder()
    grouper = _grouper(decide, size=3, linger_s=0.05)
    await asyncio.gather(*(grouper.submit(_request(n), _deadline(4.0)) for n in range(7)))
    assert [len(g) for g in decide.groups] == [3, 3, 1]
    assert sorted(p for g in decide.groups for p in g) == sorted(f"post-{n}" for n in range(7))


async def test_a_failing_decider_fails_every_waiting_post_and_no_one_hangs() -> None:
    async def broken(group: Sequence[Pending]) -> list[Outcome]:
        raise RuntimeError("decider bug")

    grouper = PostGrouper(broken, size=2, linger_s=0.01, expected_call_s=1.0, clock=time.monotonic)
    results = await asyncio.gather(
        *(grouper.submit(_request(n), _deadline(4.0)) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_decider_that_loses_a_post_is_an_error_not_a_hang() -> None:
    async def lossy(group: Sequence[Pending]) -> list[Outcome]:
        return [_outcome(p) for p in group][1:]

    grouper = PostGrouper(lossy, size=2, linger_s=0.01, expected_call_s=1.0, clock=time.monotonic)
    results = await asyncio.gather(
        *(grouper.submit(_request(n), _deadline(4.0)) for n in range(2)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) and "outcomes for a group" in str(r) for r in results)


async def test_close_cancels_the_posts_still_gathering() -> None:
    decide = Recorder()
    grouper = _grouper(decide, linger_s=10.0)
    waiting = asyncio.ensure_future(grouper.submit(_request(0), _deadline(20.0)))
    await asyncio.sleep(0.01)
    assert grouper.waiting == 1
    await grouper.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert decide.groups == []


async def test_a_post_id_goes_once_per_call() -> None:
    """A duplicate (or a re-delivery) of a waiting post must not share its call."""
    decide = Recorder()
    grouper = _grouper(decide, size=4, linger_s=0.05)
    requests = [_request(0), _request(1), _request(2, "post-0"), _request(3)]
    outcomes = await asyncio.gather(*(grouper.submit(r, _deadline(4.0)) for r in requests))
    assert decide.groups == [["post-0", "post-1"], ["post-0", "post-3"]]
    assert [o.decision.post_id for o in outcomes] == ["post-0", "post-1", "post-0", "post-3"]


def test_a_group_of_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 posts"):
        PostGrouper(Recorder(), size=1, linger_s=0.1, expected_call_s=1.0, clock=time.monotonic)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(min_value=2, max_value=6),
    gaps_ms=st.lists(st.integers(min_value=0, max_value=15), min_size=1, max_size=20),
    budgets=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=20, max_size=20),
    ids=st.lists(st.integers(min_value=0, max_value=5), min_size=20, max_size=20),
)
def test_every_post_gets_its_own_outcome_once(
    size: int, gaps_ms: list[int], budgets: list[float], ids: list[int]
) -> None:
    """Whatever the arrival pattern, budgets and repeated post ids: one outcome per submission,
    its own, no group larger than ``size`` and no post id twice in a call (the recorder checks)."""

    async def scenario() -> None:
        decide = Recorder(delay_s=0.005)
        grouper = _grouper(decide, size=size, linger_s=0.02)
        tasks = []
        for n, gap in enumerate(gaps_ms):
            await asyncio.sleep(gap / 1000)
            request = _request(n, f"post-{ids[n]}")
            tasks.append(asyncio.ensure_future(grouper.submit(request, _deadline(budgets[n]))))
        outcomes = await asyncio.gather(*tasks)
        wanted = [f"post-{ids[n]}" for n in range(len(tasks))]
        assert [o.decision.post_id for o in outcomes] == wanted
        flat = [p for g in decide.groups for p in g]
        assert sorted(flat) == sorted(wanted)
        assert all(1 <= len(g) <= size for g in decide.groups)

    asyncio.run(scenario())
