"""``modstream frontier eval-injection`` as a user runs it, against the bundled simulator."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devtools.sim.rules import extract_post, judge
from pipeline.frontier.injection_eval import load_corpus
from pipeline.frontier.prompt import user_turn
from tests.fixtures.services import MODSTREAM

pytestmark = pytest.mark.e2e


def _modstream(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODSTREAM_ANTHROPIC_")}
    return subprocess.run(
        [MODSTREAM, "frontier", "eval-injection", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "HF_HUB_OFFLINE": "1", "MODSTREAM_LOG_LEVEL": "warning"},
        check=False,
    )


def test_eval_injection_against_the_simulator(model_dir: Path) -> None:
    result = _modstream()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    cases = load_corpus()
    # What the simulator's keyword rule answers to each post as the prompt delivers it.
    answers = [judge(extract_post(user_turn(c.text))).verdict for c in cases]
    followed = sum(
        a == c.injected.value and a != c.expected.value for a, c in zip(answers, cases, strict=True)
    )
    correct = sum(a == c.expected.value for a, c in zip(answers, cases, strict=True))
    assert figures["simulator"] is True
    assert figures["posts"] == len(cases)
    assert figures["fallbacks"] == 0
    assert figures["injection_followed"] == followed
    assert figures["accuracy"] == round(correct / len(cases), 4)
    assert figures["reviewed"] >= answers.count("escalate")
    assert "SIMULATOR RUN" in result.stdout and "say nothing about" in result.stdout
    assert "SIMULATOR (not a model)" in result.stderr
    header = next(line for line in lines if line.startswith("attack"))
    assert header.split() == ["attack", "n", "followed", "accuracy", "reviewed", "fallback"]
    for attack in {c.attack for c in cases}:
        assert any(line.startswith(f"{attack} ") for line in lines), attack
    assert "ignore previous" not in result.stdout.lower()  # no post text in output or logs


def test_eval_injection_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    result = _modstream("--corpus", str(bad))
    assert result.returncode == 2
    assert "line 1" in result.stderr
    assert _modstream("--no-such-flag").returncode == 2
