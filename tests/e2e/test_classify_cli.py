"""``modstream classify`` as a user runs it: JSONL in, JSONL out, bad lines reported."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.services import MODSTREAM

pytestmark = pytest.mark.e2e

GOOD = [
    {"post_id": "p1", "text": "what a lovely morning"},
    {"post_id": "p2", "text": "you are a worthless piece of garbage, shut up"},
    {"post_id": 3, "text": "WINNER!! claim your free prize now, text CLAIM to 81010"},
    {"post_id": "p4", "text": "\ud800 broken surrogate and \u0000 control"},
    {"post_id": "p5", "text": ""},
    {"post_id": "p6", "text": "😀😀😀"},
]


def test_classify_jsonl(model_dir: Path, tmp_path: Path) -> None:
    lines = [json.dumps(doc) for doc in GOOD[:2]]
    lines += ["{not json", json.dumps({"text": "no id"}), json.dumps({"post_id": "x", "text": 5})]
    lines += [json.dumps(doc) for doc in GOOD[2:]]
    source = tmp_path / "posts.jsonl"
    source.write_bytes(
        ("\n".join(lines) + "\n").encode("utf-8") + b'{"post_id": "bad-utf8", "text": "\xff"}\n'
    )
    out = tmp_path / "scores.jsonl"
    result = subprocess.run(
        [MODSTREAM, "classify", "--in", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert result.returncode == 1, result.stderr
    for number in (3, 4, 5, 10):
        assert f"line {number}:" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["post_id"] for r in rows] == ["p1", "p2", "3", "p4", "p5", "p6"]
    for row in rows:
        assert set(row["scores"]) == {"toxic", "hate", "spam"}
        assert all(0.0 <= v <= 1.0 for v in row["scores"].values())
        assert row["verdict"] in {"allow", "borderline", "remove"}
        assert row["model_version"].startswith("minilm-l6-")
        assert row["policy_version"]
    by_id = {r["post_id"]: r for r in rows}
    assert by_id["p1"]["verdict"] == "allow"
    assert by_id["p2"]["scores"]["toxic"] > by_id["p1"]["scores"]["toxic"]
    assert by_id["3"]["scores"]["spam"] > by_id["p1"]["scores"]["spam"]


def test_clean_input_exits_zero(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "posts.jsonl"
    source.write_text(json.dumps(GOOD[0]) + "\n\n", encoding="utf-8")
    result = subprocess.run(
        [MODSTREAM, "classify", "--in", str(source), "--out", "-"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["post_id"] == "p1"
