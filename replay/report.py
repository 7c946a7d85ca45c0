"""Replay reports: verdict transitions, samples of changed posts, cost and throughput (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NONE = "none"  # the "previous verdict" of a post that had no current verdict


def transition_key(prev: str | None, new: str) -> str:
    """``"allow->remove"``; a post without a previous verdict reads ``"none->allow"``."""
    return f"{prev or NONE}->{new}"


@dataclass(frozen=True, slots=True)
class Cost:
    """What the borderline posts cost through Message Batches, against the real-time price."""

    batch_usd: float
    realtime_usd: float

    @property
    def saved_usd(self) -> float:
        return max(self.realtime_usd - self.batch_usd, 0.0)


def batch_cost(batch_usd: float, multiplier: float) -> Cost:
    """The real-time equivalent of a batch bill: batch prices are ``multiplier`` x real time."""
    if not 0.0 < multiplier <= 1.0:
        raise ValueError("batch price multiplier must be in (0, 1]")
    return Cost(batch_usd=batch_usd, realtime_usd=batch_usd / multiplier)


def estimate_cost(
    input_tokens: int,
    output_tokens: int,
    *,
    input_per_mtok: float,
    output_per_mtok: float,
    multiplier: float,
) -> Cost:
    """Expected cost of requests not sent yet (dry runs), from token estimates."""
    realtime = (input_tokens * input_per_mtok + output_tokens * output_per_mtok) / 1_000_000
    return Cost(batch_usd=realtime * multiplier, realtime_usd=realtime)


@dataclass(slots=True)
class Tally:
    """Counts that add up over chunks (and over a resumed run's earlier chunks)."""

    posts: int = 0
    changed: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    human_final: int = 0
    empty_text: int = 0
    truncated_text: int = 0
    flips_to_review: int = 0
    borderline: int = 0
    borderline_already_decided: int = 0
    kept_same_versions: int = 0
    max_samples: int = 10

    def record(self, prev: str | None, new: str, post_id: str, *, changed: bool) -> None:
        """Count one decision; ``changed`` ones are sampled per transition."""
        self.posts += 1
        key = transition_key(prev, new)
        self.transitions[key] += 1
        if changed:
            self.changed += 1
            ids = self.samples.setdefault(key, [])
            if len(ids) < self.max_samples:
                ids.append(post_id)

    def merge(self, other: Tally) -> None:
        self.posts += other.posts
        self.changed += other.changed
        self.transitions.update(other.transitions)
        for key, ids in other.samples.items():
            mine = self.samples.setdefault(key, [])
            mine.extend(ids[: max(self.max_samples - len(mine), 0)])
        for name in (
            "human_final",
            "empty_text",
            "truncated_text",
            "flips_to_review",
            "borderline",
            "borderline_already_decided",
            "kept_same_versions",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "changed": self.changed,
            "transitions": dict(sorted(self.transitions.items())),
            "changed_samples": {k: v for k, v in sorted(self.samples.items()) if v},
            "human_final_kept": self.human_final,
            "empty_text": self.empty_text,
            "truncated_text": self.truncated_text,
            "flips_to_review": self.flips_to_review,
            "borderline": self.borderline,
            "borderline_already_decided": self.borderline_already_decided,
            "kept_same_versions": self.kept_same_versions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], max_samples: int = 10) -> Tally:
        tally = cls(max_samples=max_samples)
        tally.posts = int(data.get("posts", 0))
        tally.changed = int(data.get("changed", 0))
        tally.transitions = Counter({k: int(v) for k, v in data.get("transitions", {}).items()})
        tally.samples = {k: list(v) for k, v in data.get("changed_samples", {}).items()}
        tally.human_final = int(data.get("human_final_kept", 0))
        tally.empty_text = int(data.get("empty_text", 0))
        tally.truncated_text = int(data.get("truncated_text", 0))
        tally.flips_to_review = int(data.get("flips_to_review", 0))
        tally.borderline = int(data.get("borderline", 0))
        tally.borderline_already_decided = int(data.get("borderline_already_decided", 0))
        tally.kept_same_versions = int(data.get("kept_same_versions", 0))
        return tally


@dataclass(slots=True)
class FrontierTally:
    """How the borderline posts went through Message Batches."""

    submitted: int = 0
    batches: int = 0
    decided: int = 0
    changed: int = 0
    escalated: int = 0
    retry_next_run: int = 0
    to_review: int = 0
    skipped_budget: int = 0
    batch_usd: float = 0.0
    estimated_only: bool = False

    def to_json(self, multiplier: float) -> dict[str, Any]:
        cost = batch_cost(self.batch_usd, multiplier)
        return {
            "borderline_sent": self.submitted,
            "batches": self.batches,
            "decided": self.decided,
            "changed": self.changed,
            "escalated": self.escalated,
            "retry_next_run": self.retry_next_run,
            "to_review": self.to_review,
            "skipped_budget": self.skipped_budget,
            "cost_usd": round(cost.batch_usd, 6),
            "realtime_price_usd": round(cost.realtime_usd, 6),
            "saved_usd": round(cost.saved_usd, 6),
            "estimated": self.estimated_only,
        }


def throughput(posts: int, seconds: float) -> float:
    return round(posts / seconds, 1) if seconds > 0 else 0.0


def final_report(
    *,
    run_id: str | None,
    status: str,
    dry_run: bool,
    request: dict[str, Any],
    model_version: str,
    policy_version: str,
    tally: Tally,
    frontier: dict[str, Any],
    duration_s: float,
    posts_this_process: int,
    resumes: int,
    rejections: dict[str, Any],
    error: str | None,
    finished_at: datetime,
) -> dict[str, Any]:
    """The run's report: stored with the run, printed, and sent to the webhook."""
    report: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "dry_run": dry_run,
        "request": request,
        "model_version": model_version,
        "policy_version": policy_version,
        **tally.to_json(),
        "frontier": frontier,
        "duration_s": round(duration_s, 3),
        "posts_this_process": posts_this_process,
        "posts_per_s": throughput(posts_this_process, duration_s),
        "resumes": resumes,
        **rejections,
        "finished_at": finished_at.isoformat(),
    }
    if error is not None:
        report["error"] = error
    return report


def render_text(report: dict[str, Any]) -> str:
    """A short human-readable summary (the JSON report holds everything)."""
    lines = [
        f"replay {report.get('run_id') or '(dry run)'}: {report.get('status')}",
        f"  posts {report.get('posts', 0)}  changed {report.get('changed', 0)}  "
        f"in {report.get('duration_s', 0)} s ({report.get('posts_per_s', 0)} posts/s)",
    ]
    for key, count in report.get("transitions", {}).items():
        sample = report.get("changed_samples", {}).get(key, [])
        more = f"  e.g. {', '.join(sample[:3])}" if sample else ""
        lines.append(f"  {key:<22} {count:>8}{more}")
    frontier = report.get("frontier") or {}
    if frontier:
        lines.append(
            f"  borderline sent {frontier.get('borderline_sent', 0)} in "
            f"{frontier.get('batches', 0)} batches: cost ${frontier.get('cost_usd', 0)} "
            f"(real time ${frontier.get('realtime_price_usd', 0)}, saved "
            f"${frontier.get('saved_usd', 0)}{', estimated' if frontier.get('estimated') else ''})"
        )
    if frontier.get("skipped_budget"):
        lines.append(
            f"  {frontier['skipped_budget']} borderline posts not sent: the daily batch budget "
            "is reached (MODSTREAM_BUDGET_BATCH_DAILY_USD); they stay pending for the next run"
        )
    if report.get("rejected"):
        lines.append(
            f"  rejected {report['rejected']} posts (not written; ids and reasons in the report)"
        )
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    return "\n".join(lines)
