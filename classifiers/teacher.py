"""Teacher labels: the system's own decisions as training examples, merged with the datasets.

``modstream model export-labels`` writes one JSON object per line for every reviewer decision
(provenance ``human``) and every verdict the frontier model gave in real time or through Message
Batches (provenance ``frontier``), with the post text, verdict, categories, model and policy
versions, time and whether the answer came from the API simulator. This module turns such a file
into :class:`~classifiers.data.Example` rows:

- **precedence** human > frontier > dataset: one example per post, the highest provenance wins
  (the latest decision among equals); :data:`PROVENANCE_WEIGHT` also makes it count more;
- **simulated** answers (the simulator's keyword rule) are dropped unless asked for: nothing that
  claims quality may be trained on them;
- **no leakage**: a text that is in a held-out test split is dropped;
- **labels**: ``allow`` means none of :data:`~classifiers.base.LABELS` applies (all known 0);
  ``remove`` marks the labels its categories name (``hate``; ``spam``/``scam``; anything else is
  ``toxic``) as 1 and leaves the others unknown (weight 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifiers.base import LABELS
from classifiers.data import DEFAULT_DATA_DIR, DataError, Example, load_examples
from classifiers.text import normalize
from schemas.fields import storable_text

PROVENANCE_WEIGHT: dict[str, float] = {"human": 3.0, "frontier": 2.0, "dataset": 1.0}
_RANK = {"human": 2, "frontier": 1}
_SPAM = frozenset({"spam", "scam"})
_VERDICTS = frozenset({"allow", "remove"})


@dataclass(frozen=True, slots=True)
class TeacherLabel:
    """One exported decision, as training data."""

    post_id: str
    text: str
    verdict: str
    categories: tuple[str, ...]
    provenance: str
    decided_at: str
    simulated: bool
    model_version: str | None = None
    policy_version: str | None = None

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> TeacherLabel:
        categories = document.get("categories") or []
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise DataError(
                f"teacher label for {str(document.get('post_id'))[:80]!r}: categories must be a"
                " list of names: re-export with export-labels"
            )
        try:
            label = cls(
                post_id=str(document["post_id"]),
                text=storable_text(str(document["text"])),  # a file may escape "\\ud800"
                verdict=str(document["verdict"]),
                categories=tuple(categories),
                provenance=str(document["provenance"]),
                decided_at=str(document["decided_at"]),
                simulated=bool(document.get("simulated", False)),
                model_version=document.get("model_version"),
                policy_version=document.get("policy_version"),
            )
        except (KeyError, TypeError) as exc:
            raise DataError(f"teacher label without {exc}: re-export with export-labels") from None
        if label.verdict not in _VERDICTS or label.provenance not in _RANK:
            raise DataError(
                f"teacher label for {label.post_id!r}: verdict {label.verdict!r} / provenance "
                f"{label.provenance!r} is not one of allow|remove / human|frontier"
            )
        return label


def label_targets(
    verdict: str, categories: Iterable[str]
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(targets, weights) per :data:`LABELS` for a decision: see the module doc."""
    if verdict == "allow":
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    named = {c.strip().lower() for c in categories}
    hot = {
        "hate": "hate" in named,
        "spam": bool(named & _SPAM),
        "toxic": bool(named - _SPAM - {"hate"}) or not named,
    }
    targets = tuple(1.0 if hot[name] else 0.0 for name in LABELS)
    weights = tuple(1.0 if hot[name] else 0.0 for name in LABELS)
    return targets, weights  # type: ignore[return-value]


def read_labels(path: Path) -> Iterator[TeacherLabel]:
    """The labels in a JSONL export (blank lines skipped)."""
    if not path.is_file():
        raise DataError(
            f"labels file not found: {path} (write it with modstream model export-labels)"
        )
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                document = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise DataError(f"{path}:{number}: not UTF-8") from None
            except (ValueError, RecursionError):
                raise DataError(f"{path}:{number}: not JSON") from None
            if not isinstance(document, dict):
                raise DataError(f"{path}:{number}: not a JSON object")
            yield TeacherLabel.from_json(document)


def select(
    labels: Iterable[TeacherLabel], *, include_simulated: bool = False
) -> list[TeacherLabel]:
    """One label per post: highest provenance, then latest; simulated ones only if asked."""
    best: dict[str, TeacherLabel] = {}
    for label in labels:
        if label.simulated and not include_simulated:
            continue
        held = best.get(label.post_id)
        key = (_RANK[label.provenance], label.decided_at)
        if held is None or key > (_RANK[held.provenance], held.decided_at):
            best[label.post_id] = label
    return sorted(best.values(), key=lambda label: label.post_id)


def teacher_examples(
    labels: Iterable[TeacherLabel], *, held_out: set[str], include_simulated: bool = False
) -> list[Example]:
    """Training examples (split ``train``) from ``labels``; held-out texts are dropped."""
    out = []
    for label in select(labels, include_simulated=include_simulated):
        if not label.text.strip() or normalize(label.text).lower() in held_out:
            continue
        targets, weights = label_targets(label.verdict, label.categories)
        out.append(
            Example(
                text=label.text,
                dataset=f"teacher:{label.provenance}",
                split="train",
                targets=targets,
                weights=weights,
                row_weight=PROVENANCE_WEIGHT[label.provenance],
            )
        )
    return out


def training_examples(
    data_dir: Path = DEFAULT_DATA_DIR,
    labels_path: Path | None = None,
    *,
    include_simulated: bool = False,
) -> list[Example]:
    """The datasets, plus the teacher labels in ``labels_path`` when given."""
    examples = load_examples(data_dir)
    if labels_path is None:
        return examples
    held_out = {normalize(e.text).lower() for e in examples if e.split == "test"}
    return examples + teacher_examples(
        read_labels(labels_path), held_out=held_out, include_simulated=include_simulated
    )


def composition(examples: Iterable[Example]) -> dict[str, dict[str, int]]:
    """Examples per source and split (what ``model train --dry-run`` prints)."""
    counts: dict[str, dict[str, int]] = {}
    for example in examples:
        per_split = counts.setdefault(example.dataset, {})
        per_split[example.split] = per_split.get(example.split, 0) + 1
    return dict(sorted(counts.items()))
