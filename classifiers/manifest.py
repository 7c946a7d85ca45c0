"""The built model folder's ``manifest.json``: what is in it, and whether it is intact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from classifiers.base import ModelNotFoundError

MANIFEST = "manifest.json"
VARIANT_FILES: dict[str, str] = {
    "fp32": "model.fp32.onnx",
    "optimized": "model.opt.onnx",
    "int8": "model.int8.onnx",
    "fp16": "model.fp16.onnx",
}
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """Parse ``manifest.json``; raise :class:`ModelNotFoundError` with the fix if absent."""
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ModelNotFoundError(f"no built model at {model_dir} (run `modstream model build`)")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelNotFoundError(f"unreadable manifest {path}: {exc}") from None
    for key in ("version", "labels", "max_tokens", "files", "variants"):
        if key not in manifest:
            raise ModelNotFoundError(f"manifest {path} lacks {key!r}; rebuild with --force")
    return manifest


def mismatched_files(model_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Files listed in the manifest that are missing or whose sha256 differs."""
    bad = []
    for name, digest in manifest["files"].items():
        path = model_dir / name
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(name)
    return bad
