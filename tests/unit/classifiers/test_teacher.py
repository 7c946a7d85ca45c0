"""Teacher labels: precedence, simulator exclusion, label mapping, no leakage, the merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifiers.data import DataError
from classifiers.teacher import (
    PROVENANCE_WEIGHT,
    TeacherLabel,
    composition,
    label_targets,
    read_labels,
    select,
    teacher_examples,
    training_examples,
)
from tests.unit.classifiers.test_data import data_dir

__all__ = ["data_dir"]


def label(post: str, provenance: str = "human", **kw: Any) -> dict[str, Any]:
    doc = {
        "post_id": post,
        "text": f"text of {post}",
        "verdict": "remove",
        "categories": ["hate"],
        "provenance": provenance,
        "decided_at": "2026-12-01T10:00:00+00:00",
        "simulated": False,
    }
    doc.update(kw)
    return doc


def write_labels(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


def test_provenance_order_and_weights() -> None:
    assert PROVENANCE_WEIGHT["human"] > PROVENANCE_WEIGHT["frontier"] > PROVENANCE_WEIGHT["dataset"]
    labels = [
        TeacherLabel.from_json(label("p1", "frontier", verdict="allow", decided_at="2026-12-02")),
        TeacherLabel.from_json(label("p1", "human", decided_at="2026-12-01")),
        TeacherLabel.from_json(label("p2", "frontier", decided_at="2026-12-01")),
        TeacherLabel.from_json(label("p2", "frontier", verdict="allow", decided_at="2026-12-02")),
    ]
    chosen = {lab.post_id: lab for lab in select(labels)}
    assert chosen["p1"].provenance == "human"  # a human beats a later frontier verdict
    assert chosen["p2"].verdict == "allow"  # among equals, the latest


def test_simulated_labels_are_excluded_unless_asked() -> None:
    labels = [TeacherLabel.from_json(label("p1", "frontier", simulated=True))]
    assert select(labels) == []
    assert teacher_examples(labels, held_out=set()) == []
    assert len(teacher_examples(labels, held_out=set(), include_simulated=True)) == 1


def test_label_mapping() -> None:
    assert label_targets("allow", ["hate"]) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    # LABELS = (toxic, hate, spam): named labels are 1, the others unknown.
    assert label_targets("remove", ["hate"]) == ((0.0, 1.0, 0.0), (0.0, 1.0, 0.0))
    assert label_targets("remove", ["scam"]) == ((0.0, 0.0, 1.0), (0.0, 0.0, 1.0))
    assert label_targets("remove", ["harassment"]) == ((1.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    assert label_targets("remove", []) == ((1.0, 0.0, 0.0), (1.0, 0.0, 0.0))


@given(st.lists(st.text(max_size=12), max_size=5), st.sampled_from(["allow", "remove"]))
def test_mapping_is_always_a_valid_mask(categories: list[str], verdict: str) -> None:
    targets, weights = label_targets(verdict, categories)
    assert all(t in (0.0, 1.0) for t in targets)
    assert all(w in (0.0, 1.0) for w in weights)
    assert any(w == 1.0 for w in weights)  # every label teaches something


def test_held_out_texts_never_become_training_examples() -> None:
    labels = [TeacherLabel.from_json(label("p1", text="Polite Words"))]
    assert teacher_examples(labels, held_out={"polite words"}) == []


def test_bad_lines_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"post_id": "p"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="re-export"):
        list(read_labels(bad))
    bad.write_text(json.dumps(label("p", verdict="escalate")) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="allow\\|remove"):
        list(read_labels(bad))
    with pytest.raises(DataError, match="export-labels"):
        list(read_labels(tmp_path / "missing.jsonl"))


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b'{"post_id": "p", "text": "\xff"}\n', "2: not UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000 + b"\n", "2: not JSON"),  # deeper than Python recurses
        (json.dumps(label("p", categories="hate")).encode() + b"\n", "categories must be a list"),
        (json.dumps(label("p", categories=[1])).encode() + b"\n", "categories must be a list"),
    ],
)
def test_a_hostile_line_is_a_clear_error_with_its_number(
    tmp_path: Path, line: bytes, says: str
) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(json.dumps(label("ok")).encode() + b"\n" + line)
    with pytest.raises(DataError, match=says):
        list(read_labels(path))


def test_an_escaped_lone_surrogate_in_a_text_becomes_u_fffd(tmp_path: Path) -> None:
    # Training hashes texts as UTF-8 (feature cache, splits), which cannot hold a lone surrogate.
    path = write_labels(tmp_path / "labels.jsonl", [label("p", text="bad \ud800 text")])
    [read] = list(read_labels(path))
    assert read.text == "bad \ufffd text"


def test_a_reviewer_label_reaches_the_training_set(data_dir: Path, tmp_path: Path) -> None:
    path = write_labels(
        tmp_path / "labels.jsonl",
        [
            label("human-1", "human", text="a reviewer removed this"),
            label("front-1", "frontier", text="the model removed this", verdict="remove"),
            label("sim-1", "frontier", text="the simulator said so", simulated=True),
            label("leak-1", "human", text="polite words"),  # the OLID test split's text
        ],
    )
    without = training_examples(data_dir)
    merged = training_examples(data_dir, path)
    added = {e.text: e for e in merged[len(without) :]}
    assert set(added) == {"a reviewer removed this", "the model removed this"}
    assert added["a reviewer removed this"].dataset == "teacher:human"
    assert added["a reviewer removed this"].row_weight == PROVENANCE_WEIGHT["human"]
    assert composition(merged)["teacher:human"] == {"train": 1}
    assert "the simulator said so" in {
        e.text for e in training_examples(data_dir, path, include_simulated=True)
    }
