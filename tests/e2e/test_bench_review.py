"""``modstream bench review`` as a developer runs it: a small backlog, three reviewers."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.fixtures.services import MODSTREAM

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_bench_review_reports_steady_state_and_warmup_and_no_double_claim() -> None:
    # The command starts the test stack itself (idempotent) and removes what it seeded.
    done = subprocess.run(
        [MODSTREAM, "bench", "review", "--pending", "500", "--reviewers", "3",
         "--seconds", "4", "--warmup-s", "1"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    for key in (
        "pending",
        "reviewers",
        "claim_p50_ms",
        "claim_p99_ms",
        "decide_p99_ms",
        "queue_page_p99_ms",
        "double_claims",
        "warmup_s",
        "claim_p99_ms_with_warmup",
    ):
        assert key in figures, key  # fmt: skip
    assert figures["pending"] >= 500
    assert figures["reviewers"] == 3 and figures["warmup_s"] == 1.0
    assert figures["claims"] > 0 and figures["decisions"] > 0
    assert figures["double_claims"] == 0
    assert 0 < figures["items_claimed"] <= figures["claims"]  # no item handed out twice
    assert figures["claim_p50_ms"] is not None and figures["claim_p99_ms_with_warmup"] is not None
