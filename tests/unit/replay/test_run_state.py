"""The run state: typed counters and batches, stored as JSON in replay_runs (pure)."""

from __future__ import annotations

import json

from replay.report import FrontierTally, Tally
from replay.run_state import (
    MAX_REJECTED_LISTED,
    RUNNING,
    SUCCEEDED,
    Rejection,
    RunState,
)


def a_state() -> RunState:
    tally = Tally(max_samples=2)
    tally.record("allow", "remove", "p1", changed=True)
    state = RunState(resumes=1, tally=tally)
    state = state.with_rejections([Rejection("p9", "postgres", "SQLSTATE 22021")])
    state.batch_submitted("msgbatch_1", 3).done = True
    state.batch_submitted("msgbatch_2", 1)
    state.count_message_batches(FrontierTally(submitted=4, batches=2, batch_usd=0.25))
    return state


def test_json_round_trip_keeps_everything() -> None:
    state = a_state()
    stored = json.loads(json.dumps(state.to_json()))
    assert RunState.from_json(stored, max_samples=2) == state
    assert stored["frontier_batches"] == [
        {"id": "msgbatch_1", "requests": 3, "done": True},
        {"id": "msgbatch_2", "requests": 1, "done": False},
    ]
    assert stored["tally"]["transitions"] == {"allow->remove": 1}


def test_a_new_run_reads_as_zero() -> None:
    state = RunState.from_json({"state": RUNNING}, max_samples=10)
    assert state == RunState(tally=Tally(max_samples=10))
    assert state.open_batches() == [] and state.frontier_tally is None


def test_resuming_counts_and_collects_open_batches() -> None:
    state = RunState.from_json({**a_state().to_json(), "state": "failed"}, max_samples=2)
    state.resumed()
    assert state.status == RUNNING and state.resumes == 2
    assert [b.batch_id for b in state.open_batches()] == ["msgbatch_2"]


def test_a_chunk_is_added_to_a_copy() -> None:
    state = a_state()
    chunk = Tally(max_samples=2)
    chunk.record(None, "allow", "p2", changed=True)
    after = state.with_chunk(chunk)
    assert after.tally.posts == 2 and state.tally.posts == 1
    after.batch_submitted("msgbatch_3", 1)
    assert len(state.message_batches) == 2  # the copy does not share the list


def test_rejections_add_up_and_the_list_is_capped() -> None:
    state = RunState()
    assert state.with_rejections([]) is state
    one = state.with_rejections([Rejection("p1", "postgres", "DataError")])
    assert one.rejections_json() == {
        "rejected": 1,
        "rejected_posts": [{"post_id": "p1", "dependency": "postgres", "reason": "DataError"}],
    }
    many = [Rejection(f"q{i}", "kafka", "too large") for i in range(MAX_REJECTED_LISTED + 5)]
    capped = one.with_rejections(many)
    assert capped.rejected == MAX_REJECTED_LISTED + 6
    assert len(capped.rejected_posts) == MAX_REJECTED_LISTED
    assert state.rejected == 0 and state.rejected_posts == []  # the original is not changed


def test_the_final_row_is_the_report_plus_what_a_resume_needs() -> None:
    final = a_state().final_json({"status": SUCCEEDED, "posts": 1}, SUCCEEDED)
    assert final["state"] == SUCCEEDED and final["posts"] == 1
    assert final["frontier_tally"]["submitted"] == 4 and final["resumes"] == 1
