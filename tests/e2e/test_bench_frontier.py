"""``modstream bench frontier`` as a developer runs it: two designs, a fast simulator."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.fixtures.services import MODSTREAM

pytestmark = [pytest.mark.e2e]


def test_bench_frontier_compares_one_post_and_grouped_calls_through_the_stage_path() -> None:
    done = subprocess.run(
        [MODSTREAM, "bench", "frontier", "--posts", "40", "--rate", "40",
         "--designs", "examples,multi-4", "--latency-p50", "0.02", "--latency-p99", "0.05",
         "--rate-429", "0", "--output-token-ms", "0", "--linger", "0.1"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["design"] == "examples" and figures["posts"] == 40
    one, grouped = figures["designs"]["examples"], figures["designs"]["multi-4"]
    for design in (one, grouped):
        assert design["decided"] == 1.0 and design["within_sla"] == 1.0
        assert design["frontier_share"] == 1.0  # a fast provider: no fallback
    assert one["calls"] == 40
    assert 10 <= grouped["calls"] < 40  # posts shared calls
    assert grouped["agreement"] == 1.0  # each verdict reached its own post
    assert grouped["usd_per_1000_frontier"] < one["usd_per_1000_frontier"]
