"""``modstream model lodo`` as a user runs it: the LODO trainer's own options, through the one CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from classifiers.layout import ARTIFACTS_DIR, META_FILE
from tests.fixtures.services import MODSTREAM

pytestmark = pytest.mark.e2e


def test_lodo_passes_its_options_through_and_names_itself() -> None:
    shown = subprocess.run(
        [MODSTREAM, "model", "lodo", "--help"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "usage: modstream model lodo" in shown.stdout
    assert "--sources" in shown.stdout and "--out" in shown.stdout

    wrong = subprocess.run(
        [MODSTREAM, "model", "lodo", "--recipes", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 2
    assert "unknown recipes ['nope']" in wrong.stderr
    assert "frozen-long-balanced" in wrong.stderr


def test_attaching_needs_exactly_one_recipe() -> None:
    wrong = subprocess.run(
        [MODSTREAM, "model", "lodo", "--recipes", "top1", "top2", "--attach-to", "somewhere"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 2
    assert "--attach-to needs exactly one recipe" in wrong.stderr


def test_attaching_another_recipe_is_refused_before_any_fold_runs(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    shutil.copy(ARTIFACTS_DIR / META_FILE, artifacts / META_FILE)
    before = (artifacts / META_FILE).read_bytes()
    wrong = subprocess.run(
        [MODSTREAM, "model", "lodo", "--recipes", "frozen", "--attach-to", str(artifacts)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 2
    assert "did not train the artifacts" in wrong.stderr and "top_layers" in wrong.stderr
    assert "lodo frozen" not in wrong.stdout  # no fold ran
    assert (artifacts / META_FILE).read_bytes() == before
