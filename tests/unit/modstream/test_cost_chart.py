from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from modstream.commands.cost_chart import draw


def _doc(points: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "window": {"since": "2026-12-02T08:00:00+00:00", "until": "2026-12-03T09:00:00+00:00"},
        "series": {"bucket": "hour", "points": points},
        "totals": {"machine_usd": 0.0, "human_usd": 0.0},
        "counterfactuals": {
            "borderline_via_batch_usd": 0.0,
            "no_caching_usd": 0.0,
            "pure_frontier_usd": None,
        },
    }


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_an_empty_window_draws_a_chart_without_warnings(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cost{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draw(_doc([]), path)
    assert path.stat().st_size > 0
    if suffix == ".svg":  # matplotlib keeps each text as a comment beside its glyphs
        assert "no spend in this window" in path.read_text(encoding="utf-8")


def test_spend_per_mode_is_drawn(tmp_path: Path) -> None:
    doc = _doc(
        [
            {"bucket": "2026-12-03T08:00:00+00:00", "mode": "frontier", "usd": 0.25},
            {"bucket": "2026-12-03T08:00:00+00:00", "mode": "classifier", "usd": 0.01},
        ]
    )
    doc["totals"] = {"machine_usd": 0.26, "human_usd": 1.5}
    path = tmp_path / "cost.svg"
    draw(doc, path)
    svg = path.read_text(encoding="utf-8")
    assert "no spend in this window" not in svg
    assert "classifier" in svg  # the legend names the modes that spent
