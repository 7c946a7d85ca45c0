"""``modstream cost --chart``: cost per mode over time and the counterfactual bars (matplotlib)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

MODES = ("classifier", "frontier", "batch", "streaming", "human")


def draw(doc: dict[str, Any], path: Path) -> None:
    """Write the chart of ``doc`` to ``path`` (the suffix picks PNG or SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_bucket: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(MODES, 0.0))
    for point in doc["series"]["points"]:
        per_bucket[point["bucket"]][point["mode"]] += point["usd"]
    buckets = sorted(per_bucket)
    when = [datetime.fromisoformat(b) for b in buckets]
    fig, (over_time, bars) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(2, 1))
    bottom = [0.0] * len(buckets)
    width = 0.8 / (24 if doc["series"]["bucket"] == "hour" else 1)
    for mode in MODES:
        values = [per_bucket[b][mode] for b in buckets]
        if any(values):
            over_time.bar(when, values, width=width, bottom=bottom, label=mode)
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    over_time.set_title(f"USD per {doc['series']['bucket']}, by mode")
    over_time.set_ylabel("USD")
    if over_time.get_legend_handles_labels()[1]:
        over_time.legend(loc="upper left", fontsize="small")
    else:
        over_time.text(
            0.5, 0.5, "no spend in this window", ha="center", transform=over_time.transAxes
        )
    over_time.tick_params(axis="x", labelrotation=30)
    totals, counter = doc["totals"], doc["counterfactuals"]
    labels = ["hybrid", "hybrid +\nhuman", "borderline\nvia batch", "no\ncaching", "pure\nfrontier"]
    values = [
        totals["machine_usd"],
        totals["machine_usd"] + totals["human_usd"],
        counter["borderline_via_batch_usd"],
        counter["no_caching_usd"],
        counter["pure_frontier_usd"] or 0.0,
    ]
    bars.bar(labels, values, color=["C0", "C1", "C2", "C3", "C4"])
    bars.set_yscale(
        "symlog", linthresh=max(min(v for v in values if v > 0) if any(values) else 1, 1e-6)
    )
    bars.set_title("Hybrid vs counterfactuals (USD, log)")
    for x, value in enumerate(values):
        bars.annotate(f"${value:,.2f}", (x, value), ha="center", va="bottom", fontsize="small")
    fig.suptitle(f"modstream cost {doc['window']['since']} → {doc['window']['until']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
