"""``modstream model lodo`` as a user runs it: the LODO trainer's own options, through the one CLI."""

from __future__ import annotations

import subprocess

import pytest

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
