"""Transitions, samples, cost with the batch discount, rendering (pure)."""

from __future__ import annotations

import pytest

from replay.report import (
    FrontierTally,
    Tally,
    batch_cost,
    estimate_cost,
    render_text,
    throughput,
    transition_key,
)


def test_transition_keys() -> None:
    assert transition_key("allow", "remove") == "allow->remove"
    assert transition_key(None, "allow") == "none->allow"


def test_tally_counts_samples_and_merges() -> None:
    a = Tally(max_samples=2)
    for i in range(3):
        a.record("allow", "remove", f"p{i}", changed=True)
    a.record("remove", "remove", "q", changed=False)
    assert a.posts == 4 and a.changed == 3
    assert a.transitions == {"allow->remove": 3, "remove->remove": 1}
    assert a.samples == {"allow->remove": ["p0", "p1"]}
    b = Tally(max_samples=2)
    b.record(None, "allow", "n1", changed=True)
    b.empty_text = 2
    a.merge(b)
    assert a.posts == 5 and a.changed == 4 and a.empty_text == 2
    assert a.samples["none->allow"] == ["n1"]
    again = Tally.from_json(a.to_json(), max_samples=2)
    assert again.to_json() == a.to_json()


def test_batch_cost_is_half_of_real_time() -> None:
    cost = batch_cost(1.5, 0.5)
    assert cost.realtime_usd == pytest.approx(3.0)
    assert cost.saved_usd == pytest.approx(1.5)
    with pytest.raises(ValueError):
        batch_cost(1.0, 0.0)


def test_estimated_cost() -> None:
    cost = estimate_cost(
        2_000_000, 100_000, input_per_mtok=1.0, output_per_mtok=5.0, multiplier=0.5
    )
    assert cost.realtime_usd == pytest.approx(2.5)
    assert cost.batch_usd == pytest.approx(1.25)


def test_frontier_tally_json() -> None:
    tally = FrontierTally(submitted=10, batches=1, decided=9, retry_next_run=1, batch_usd=0.02)
    out = tally.to_json(0.5)
    assert out["borderline_sent"] == 10
    assert out["realtime_price_usd"] == pytest.approx(0.04)
    assert out["saved_usd"] == pytest.approx(0.02)


def test_throughput_and_render() -> None:
    assert throughput(100, 2.0) == 50.0 and throughput(5, 0.0) == 0.0
    tally = Tally()
    tally.record("allow", "remove", "p1", changed=True)
    report = {
        "run_id": "r1",
        "status": "succeeded",
        **tally.to_json(),
        "duration_s": 1.0,
        "posts_per_s": 1.0,
        "frontier": FrontierTally(submitted=2, batch_usd=0.01).to_json(0.5),
    }
    text = render_text(report)
    assert "allow->remove" in text and "p1" in text and "borderline sent 2" in text
    assert "rejected" not in text
    rejected = render_text({**report, "rejected": 2, "rejected_posts": [{"post_id": "p9"}]})
    assert "rejected 2 posts" in rejected
