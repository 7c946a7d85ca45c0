"""Names and locations of the committed training artifacts (no heavy imports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from classifiers.base import ModelBuildError

HEAD_FILE = "head.safetensors"
ENCODER_FILE = "encoder_top.safetensors"
META_FILE = "training.json"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


def read_meta(artifacts: Path = ARTIFACTS_DIR) -> dict[str, Any]:
    """Training metadata (labels, head width, trained layers, thresholds, metrics)."""
    path = artifacts / META_FILE
    if not path.is_file():
        raise ModelBuildError(f"no training metadata at {path}: run `modstream model train`")
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta
