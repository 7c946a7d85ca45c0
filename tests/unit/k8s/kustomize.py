"""The Go kustomize binary that renders k8s/overlays, cached under .modstream/bin.

``.ci/run`` installs it before the tests; a developer's first run installs it here the same way
(``go install`` of the pinned version from the Go module proxy, a few minutes once).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
VERSION = "v5.7.1"
MODULE = f"sigs.k8s.io/kustomize/kustomize/v5@{VERSION}"
BIN_DIR = ROOT / ".modstream" / "bin"
BINARY = BIN_DIR / "kustomize"


def _installed_version() -> str | None:
    if not BINARY.is_file():
        return None
    result = subprocess.run(
        [str(BINARY), "version"], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def kustomize() -> Path:
    """The pinned kustomize binary, installed with ``go install`` if missing or another version."""
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with (BIN_DIR / ".kustomize.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version() != VERSION:
            go = shutil.which("go") or "/usr/local/go/bin/go"
            subprocess.run(
                [go, "install", MODULE],
                env={**os.environ, "GOBIN": str(BIN_DIR)},
                check=True,
                timeout=1200,
            )
        assert _installed_version() == VERSION
    return BINARY


def render(path: Path) -> list[dict[str, Any]]:
    """``kustomize build path`` as a list of objects."""
    result = subprocess.run(
        [str(kustomize()), "build", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
