"""The validators of k8s/monitoring, cached under .modstream/bin like the pinned kustomize.

- promtool, Prometheus's own rule checker and rule unit-test runner: ``go install`` of the pinned
  module version from the Go module proxy (``.ci/run`` installs it before the tests; a developer's
  first run installs it here the same way, several minutes once).
- validate-dashboard, k8s/monitoring/validate: a small Go program that decodes a dashboard
  strictly into the Grafana Foundation SDK's dashboard model (SDK version pinned in its go.mod).
  It is rebuilt once per test session (Go's build cache makes that a second or two).

A missing Go toolchain or a failed install fails the tests that need them; nothing is skipped.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BIN_DIR = ROOT / ".modstream" / "bin"
PROMTOOL_VERSION = "v0.316.0"
"""Module version of github.com/prometheus/prometheus (Prometheus 3.16.0)."""
PROMTOOL_MODULE = f"github.com/prometheus/prometheus/cmd/promtool@{PROMTOOL_VERSION}"
PROMTOOL = BIN_DIR / "promtool"
VALIDATOR_SOURCE = ROOT / "k8s" / "monitoring" / "validate"
VALIDATOR = BIN_DIR / "validate-dashboard"


def _go() -> str:
    return shutil.which("go") or "/usr/local/go/bin/go"


def _promtool_version() -> str | None:
    """The prometheus module version the binary was built from (``go version -m``)."""
    if not PROMTOOL.is_file():
        return None
    result = subprocess.run(
        [_go(), "version", "-m", str(PROMTOOL)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields[:2] == ["mod", "github.com/prometheus/prometheus"]:
            return fields[2]
    return None


@functools.cache
def promtool() -> Path:
    """The pinned promtool, installed with ``go install`` if missing or another version."""
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with (BIN_DIR / ".promtool.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _promtool_version() != PROMTOOL_VERSION:
            subprocess.run(
                [_go(), "install", PROMTOOL_MODULE],
                env={**os.environ, "GOBIN": str(BIN_DIR), "GOFLAGS": "-mod=mod"},
                check=True,
                timeout=2400,
            )
        assert _promtool_version() == PROMTOOL_VERSION
    return PROMTOOL


@functools.cache
def dashboard_validator() -> Path:
    """validate-dashboard, built from k8s/monitoring/validate (once per session)."""
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with (BIN_DIR / ".validate-dashboard.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            [_go(), "build", "-o", str(VALIDATOR), "."],
            cwd=VALIDATOR_SOURCE,
            check=True,
            timeout=1200,
        )
    return VALIDATOR


def run(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=300, check=False
    )
