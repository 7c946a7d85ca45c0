"""``modstream bench scale`` as a developer runs it: 1 and 2 real-time processes, tiny backlog."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.services import MODSTREAM

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_bench_scale_reports_every_process_count_and_loses_nothing(model_dir: Path) -> None:
    # The command starts the test stack itself (idempotent), as `modstream bench` does.
    done = subprocess.run(
        [MODSTREAM, "bench", "scale", "--posts", "200", "--max-processes", "2"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    for key in ("posts_per_s_1", "posts_per_s_2", "efficiency_2", "lost", "cores", "cpu_model"):
        assert key in figures, key
    assert figures["posts_per_s_1"] > 0 and figures["posts_per_s_2"] > 0
    assert figures["efficiency_2"] == pytest.approx(
        figures["posts_per_s_2"] / (2 * figures["posts_per_s_1"]), abs=0.002
    )
    assert figures["lost"] == 0
    assert figures["duplicate_verdicts"] == 0
    assert figures["exit_codes"] == {"1": [0], "2": [0, 0]}
    assert figures["lag_threshold_cpu"] >= 10
    for n in (1, 2):
        curve = figures[f"lag_curve_{n}"]
        assert curve[-1][1] == 0  # drained
        assert max(lag for _, lag in curve) <= 200
    assert "lag N=2" in done.stderr  # the text curve
