"""A run's state, as stored in ``replay_runs.report`` while the run is unfinished (pure).

The state is what a resumed run needs: the running tally (saved with every checkpoint, in the
chunk's transaction), the posts a dependency refused, the Message Batches submitted so far and
their tally. :meth:`RunState.to_json` / :meth:`RunState.from_json` are the only (de)serialisation
of that column; the phases change the state through its methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from replay.report import FrontierTally, Tally

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"

#: The report keeps at most this many rejected posts by id (the count is always complete).
MAX_REJECTED_LISTED = 1000


@dataclass(frozen=True, slots=True)
class Rejection:
    """A post whose outputs a dependency refused on their own."""

    post_id: str
    dependency: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"post_id": self.post_id, "dependency": self.dependency, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rejection:
        return cls(str(data["post_id"]), str(data["dependency"]), str(data["reason"]))


@dataclass(slots=True)
class SubmittedBatch:
    """A Message Batch the run submitted; ``done`` once its results were applied."""

    batch_id: str
    requests: int
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.batch_id, "requests": self.requests, "done": self.done}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubmittedBatch:
        return cls(str(data["id"]), int(data.get("requests", 0)), bool(data.get("done", False)))


@dataclass(slots=True)
class RunState:
    """Counters, status and Message Batches of one run."""

    status: str = RUNNING
    resumes: int = 0
    tally: Tally = field(default_factory=Tally)
    rejected: int = 0
    rejected_posts: list[Rejection] = field(default_factory=list)
    message_batches: list[SubmittedBatch] = field(default_factory=list)
    frontier_tally: FrontierTally | None = None

    # --- the runs table ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": self.status,
            "resumes": self.resumes,
            "tally": self.tally.to_json(),
            "rejected": self.rejected,
            "rejected_posts": [r.to_json() for r in self.rejected_posts],
            "frontier_batches": [b.to_json() for b in self.message_batches],
        }
        if self.frontier_tally is not None:
            data["frontier_tally"] = asdict(self.frontier_tally)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, max_samples: int) -> RunState:
        """The stored state; missing keys (a run that had not checkpointed yet) read as zero."""
        saved_tally = data.get("frontier_tally")
        return cls(
            status=str(data.get("state", RUNNING)),
            resumes=int(data.get("resumes", 0)),
            tally=Tally.from_json(data.get("tally", {}), max_samples=max_samples),
            rejected=int(data.get("rejected", 0)),
            rejected_posts=[Rejection.from_json(r) for r in data.get("rejected_posts", [])],
            message_batches=[SubmittedBatch.from_json(b) for b in data.get("frontier_batches", [])],
            frontier_tally=FrontierTally(**saved_tally) if isinstance(saved_tally, dict) else None,
        )

    def final_json(self, report: Mapping[str, Any], status: str) -> dict[str, Any]:
        """The row's final content: the report, plus what a later resume needs."""
        return {**self.to_json(), **report, "state": status}

    # --- changes -----------------------------------------------------------------------------
    def resumed(self) -> None:
        """This process continues the run."""
        self.status = RUNNING
        self.resumes += 1

    def count(self, tally: Tally) -> None:
        """Add a chunk's counts (a dry run, which stores nothing)."""
        self.tally.merge(tally)

    def with_chunk(self, tally: Tally) -> RunState:
        """A copy with a chunk's counts added: what commits together with the chunk."""
        merged = Tally.from_json(self.tally.to_json(), max_samples=self.tally.max_samples)
        merged.merge(tally)
        return replace(
            self,
            tally=merged,
            rejected_posts=list(self.rejected_posts),
            message_batches=[replace(b) for b in self.message_batches],
        )

    def with_rejections(self, rejected: Sequence[Rejection]) -> RunState:
        """A copy with ``rejected`` added to the count and the (capped) list."""
        if not rejected:
            return self
        room = max(MAX_REJECTED_LISTED - len(self.rejected_posts), 0)
        return replace(
            self,
            rejected=self.rejected + len(rejected),
            rejected_posts=[*self.rejected_posts, *rejected[:room]],
        )

    def rejections_json(self) -> dict[str, Any]:
        """The report's ``rejected`` count and ``rejected_posts`` list."""
        return {
            "rejected": self.rejected,
            "rejected_posts": [r.to_json() for r in self.rejected_posts],
        }

    def batch_submitted(self, batch_id: str, requests: int) -> SubmittedBatch:
        batch = SubmittedBatch(batch_id, requests)
        self.message_batches.append(batch)
        return batch

    def open_batches(self) -> list[SubmittedBatch]:
        """Submitted batches whose results were not applied yet (a resumed run collects them)."""
        return [b for b in self.message_batches if not b.done]

    def count_message_batches(self, tally: FrontierTally) -> None:
        self.frontier_tally = replace(tally)
