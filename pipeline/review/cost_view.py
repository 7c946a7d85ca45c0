"""What the cost panel draws: per-mode rows and their bar series, from a cost document.

Each mode's chart is one bar per bucket of the window (hours today, days for the longer
windows), buckets without cost included as empty, scaled to that mode's own peak (the share
column compares the modes; the chart shows when a mode spent). Geometry is computed here so the
template only places ``<rect>`` elements: no script draws anything, and the CSP needs no
inline style.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CHART_WIDTH = 160.0
CHART_HEIGHT = 28.0
BAR_GAP = 0.15
"""Fraction of a bucket's width left empty between bars."""

MODE_LABELS = {
    "classifier": "Classifier (ONNX)",
    "frontier": "Frontier (real time)",
    "batch": "Batch (nightly replay)",
    "streaming": "Streamed analysis",
    "human": "Human review",
}


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True, slots=True)
class ModeRow:
    mode: str
    label: str
    posts: int
    usd: float | None
    usd_per_1000: float | None
    share: float
    bars: list[Bar]
    peak_usd: float
    chart_label: str


@dataclass(frozen=True, slots=True)
class CostPanel:
    window: str
    title: str
    bucket: str
    buckets: int
    doc: dict[str, Any]
    rows: list[ModeRow]

    @property
    def totals(self) -> dict[str, Any]:
        return dict(self.doc["totals"])

    @property
    def prices(self) -> dict[str, Any]:
        return dict(self.doc["prices"])


def usd(value: float | None) -> str:
    """``$1,234.56``, ``$0.0123``, ``$0.000123``; ``n/a`` for no value."""
    if value is None:
        return "n/a"
    size = abs(value)
    digits = 2 if size >= 1 or size == 0 else 4 if size >= 0.01 else 6
    return f"${value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}x"


def utc(iso: str) -> str:
    """An ISO 8601 time as ``2025-06-10 14:00 UTC``."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _buckets(since: datetime, until: datetime, bucket: str) -> list[datetime]:
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if bucket != "hour":
        start = start.replace(hour=0)
    out = []
    while start < until:
        out.append(start)
        start += step
    return out


def _stamp(moment: datetime, bucket: str) -> str:
    return moment.strftime("%Y-%m-%d %H:00 UTC" if bucket == "hour" else "%Y-%m-%d")


def _bars(values: list[float], starts: list[datetime], bucket: str) -> list[Bar]:
    peak = max(values, default=0.0)
    width = CHART_WIDTH / max(len(values), 1)
    bars = []
    for i, (value, start) in enumerate(zip(values, starts, strict=True)):
        height = value / peak * (CHART_HEIGHT - 1) if peak > 0 else 0.0
        bars.append(
            Bar(
                x=round(i * width + width * BAR_GAP / 2, 2),
                y=round(CHART_HEIGHT - 1 - height, 2),
                width=round(width * (1 - BAR_GAP), 2),
                height=round(height, 2),
                label=f"{_stamp(start, bucket)}: {usd(value)}",
            )
        )
    return bars


def panel(doc: dict[str, Any], window: str, title: str) -> CostPanel:
    """The panel of one window's cost document (``CostReader.document``)."""
    bucket = doc["series"]["bucket"]
    starts = _buckets(
        datetime.fromisoformat(doc["window"]["since"]),
        datetime.fromisoformat(doc["window"]["until"]),
        bucket,
    )
    index = {start: i for i, start in enumerate(starts)}
    per_mode: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(starts))
    for point in doc["series"]["points"]:
        slot = index.get(datetime.fromisoformat(point["bucket"]))
        if slot is not None:
            per_mode[point["mode"]][slot] += float(point["usd"])
    rows = []
    for mode in doc["modes"]:
        name = mode["mode"]
        values = per_mode[name]
        peak = max(values, default=0.0)
        label = MODE_LABELS.get(name, name)
        rows.append(
            ModeRow(
                mode=name,
                label=label,
                posts=int(mode["posts"]),
                usd=mode["usd"],
                usd_per_1000=mode["usd_per_1000"],
                share=float(mode["share"]),
                bars=_bars(values, starts, bucket),
                peak_usd=peak,
                chart_label=(
                    f"{label}: cost per {bucket}, {title.lower()}, {len(starts)} bars, "
                    f"peak {usd(peak)} per {bucket}"
                ),
            )
        )
    return CostPanel(window, title, bucket, len(starts), doc, rows)
