"""The arithmetic of ``modstream bench scale``: lag from offsets, scaling efficiency, the KEDA
lag threshold, and a compact text curve. Pure functions, unit-tested without a broker."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: Seconds of backlog one real-time replica may hold before KEDA adds another. A post that waits
#: this long in posts.ingest still has 5 s (MODSTREAM_SLA_SECONDS) - 2 s = 3 s for the rest of
#: its path when it is borderline: scoring (p99 ≤ 0.25 s), then a frontier call (expected 1.5 s,
#: MODSTREAM_FRONTIER_EXPECTED_CALL_SECONDS) and the publish margin (0.3 s). A 10 s target would
#: let every borderline post in a backlog miss the SLA before the autoscaler reacted.
DRAIN_TARGET_SECONDS = 2.0

#: ``cpu_replica_posts_per_s`` of the README's ``modstream bench scale`` run: two one-thread
#: processes on 2 cores, i.e. one replica of k8s/overlays/cpu (2 CPUs). The CPU lagThreshold in
#: k8s/base/realtime.yaml is ``lag_threshold(this, DRAIN_TARGET_SECONDS)`` (a test checks it).
MEASURED_CPU_REPLICA_POSTS_PER_S = 218.3

#: An ESTIMATE, not a measurement (no GPU was lent to this project's runs): on a GPU the model is
#: no longer the bottleneck, the process's Python side is. On the idle-machine realtime bench
#: (README, 2026-11-30) pipeline and raw classifier differed by 2 cores / 1,398 posts/s -
#: 2 cores / 1,611 posts/s = 0.19 ms of CPU per post outside inference, about 5,000 posts/s for
#: the one event-loop thread. The GPU overlay's lagThreshold is ``lag_threshold(this, 2 s)``.
GPU_REPLICA_POSTS_PER_S_ESTIMATE = 5_000.0

_BARS = " ▁▂▃▄▅▆▇█"


def total_lag(
    end_offsets: Mapping[int, int],
    committed: Mapping[int, int | None],
    beginning: Mapping[int, int] | None = None,
    markers: Mapping[int, int] | None = None,
) -> int:
    """Records behind the group: Σ over partitions of end offset - committed offset.

    A partition without a committed offset (``None``, missing or negative) counts from its
    beginning offset (0 when unknown), as a consumer with ``auto_offset_reset=earliest`` reads
    it. ``markers`` are transaction commit markers at the end of a partition: they take an
    offset but are no record, and a consumer that read every record commits the offset before
    them. Never negative per partition (a commit can be seen before a stale end offset).
    """
    lag = 0
    for partition, end in end_offsets.items():
        done = committed.get(partition)
        if done is None or done < 0:
            done = (beginning or {}).get(partition, 0)
        lag += max(0, end - (markers or {}).get(partition, 0) - done)
    return lag


def efficiencies(posts_per_s: Mapping[int, float]) -> dict[int, float]:
    """``efficiency_N = posts_per_s_N / (N * posts_per_s_1)`` for every measured N."""
    one = posts_per_s.get(1)
    if not one:
        return {}
    return {n: rate / (n * one) for n, rate in sorted(posts_per_s.items())}


def replica_posts_per_s(posts_per_s: Mapping[int, float], replica_cores: int) -> float:
    """Throughput of a replica with ``replica_cores`` cores, from one-thread processes.

    N one-thread processes sharing N cores are N cores' worth of inference, so the measured
    ``posts_per_s_N`` for N = ``replica_cores`` is used when there is one; otherwise the
    one-process figure scaled linearly (an upper bound: efficiency ≤ 1).
    """
    if replica_cores in posts_per_s:
        return posts_per_s[replica_cores]
    return replica_cores * posts_per_s[1]


def lag_threshold(per_replica_posts_per_s: float, drain_seconds: float) -> int:
    """KEDA ``lagThreshold``: the backlog one replica drains in ``drain_seconds``.

    Rounded down to a multiple of 10 (at least 10): a lower threshold scales out earlier, the
    safe side for latency.
    """
    if per_replica_posts_per_s <= 0 or drain_seconds <= 0:
        raise ValueError("throughput and drain time must be positive")
    return max(10, math.floor(per_replica_posts_per_s * drain_seconds / 10) * 10)


def drain_rate(posts: int, visible_at: float, last_decided_at: float) -> float:
    """Posts per second from the backlog becoming visible to its last decision."""
    return posts / max(last_decided_at - visible_at, 1e-9)


def count_outcomes(
    produced: Sequence[str], decided: Mapping[str, int], published: Mapping[str, int]
) -> dict[str, int]:
    """Lost and duplicated posts: each produced post needs exactly one real-time verdict row
    (``decided``: rows per post id) and one output record (``published``: records per post id on
    the decisions or borderline topic)."""
    lost = sum(1 for post in produced if not decided.get(post) or not published.get(post))
    return {
        "produced": len(produced),
        "decided": sum(1 for post in produced if decided.get(post)),
        "lost": lost,
        "duplicate_verdicts": sum(max(0, decided.get(post, 0) - 1) for post in produced),
        "duplicate_outputs": sum(max(0, published.get(post, 0) - 1) for post in produced),
    }


def text_curve(samples: Sequence[tuple[float, int]], width: int = 40) -> str:
    """One line: peak lag, a bar per time slot (the slot's largest sample), time to drain."""
    if not samples:
        return "(no samples)"
    peak = max(lag for _, lag in samples) or 1
    end = samples[-1][0] or 1.0
    filled: list[int | None] = [None] * width
    for t, lag in samples:
        slot = min(width - 1, int(t / end * (width - 1)))
        filled[slot] = max(filled[slot] or 0, lag)
    slots, last = [], samples[0][1]
    for value in filled:  # a slot without a sample repeats the one before
        last = last if value is None else value
        slots.append(last)
    bars = "".join(_BARS[math.ceil(lag / peak * (len(_BARS) - 1))] for lag in slots)
    return f"{peak:>7,} |{bars}| 0 at {end:.1f} s"
