"""What the operator asked a replay to do, and the keys that recognise "the same run"."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What the operator asked for (the CLI's parsed arguments)."""

    since: datetime | None = None
    until: datetime | None = None
    since_last_run: bool = False
    stale: bool = False
    category: str | None = None
    sample: float | None = None
    shard_index: int = 0
    shard_count: int = 1
    id_prefix: str | None = None
    dry_run: bool = False
    resume: str | None = None
    new_run: bool = False
    progress: bool = True

    def criteria(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("dry_run", "resume", "new_run", "progress"):
            data.pop(key)
        for key in ("since", "until"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data

    def key(self, model_version: str, policy_version: str) -> str:
        """Identifies "the same run" for automatic resume: criteria and versions."""
        doc = {"criteria": self.criteria(), "model": model_version, "policy": policy_version}
        return _digest(doc)

    def scope_key(self) -> str:
        """What ``--since-last-run`` compares: the same filters and shard, any window."""
        doc = self.criteria()
        for key in ("since", "until"):
            doc.pop(key)
        return _digest(doc)


def _digest(doc: dict[str, Any]) -> str:
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]
