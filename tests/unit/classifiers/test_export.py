from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from classifiers.export import INT8_MAX_TOL, INT8_MEAN_TOL, PARITY_TOL, build, up_to_date
from classifiers.manifest import mismatched_files, read_manifest
from classifiers.model import load_model
from classifiers.onnx import OnnxClassifier
from classifiers.tokenize import TextEncoder

SAMPLE = [
    "have a great day everyone",
    "shut up you stupid idiot",
    "those people are animals and should be sent back",
    "URGENT! You have won a 1 week FREE membership, call 09061701461 now",
    "lol that game last night was insane 😂",
    "",
    "\ud800\x00",
    "je ne sais pas pourquoi",
    "this is a long post " * 60,
    "@USER you are a disgrace to this country #MAGA URL",
]


def test_manifest_is_complete_and_intact(model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    assert manifest["labels"] == ["toxic", "hate", "spam"]
    assert set(manifest["variants"]) == {"fp32", "optimized", "int8", "fp16"}
    assert set(manifest["default_thresholds"]) == {"toxic", "hate", "spam"}
    assert "tokenizer.json" in manifest["files"]
    assert mismatched_files(model_dir, manifest) == []
    assert manifest["parity"]["fp32_max_abs_diff"] <= PARITY_TOL


def test_build_is_idempotent(model_dir: Path) -> None:
    assert up_to_date(model_dir)
    assert build(model_dir).built is False


@pytest.mark.parametrize("variant", ["fp32", "optimized"])
def test_onnx_matches_torch(model_dir: Path, variant: str) -> None:
    torch.set_num_threads(2)
    model, _ = load_model()
    clf = OnnxClassifier(model_dir, variant=variant, providers=["CPUExecutionProvider"])  # type: ignore[arg-type]
    try:
        encoder = TextEncoder(model_dir / "tokenizer.json", clf.max_tokens)
        ids, mask = encoder.pad(encoder.encode(SAMPLE))
        with torch.no_grad():
            want = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        got = clf.predict_array(SAMPLE)
    finally:
        clf.close()
    assert float(np.max(np.abs(got - want))) <= PARITY_TOL


def test_int8_agrees_with_fp32(
    int8_classifier: OnnxClassifier, fp32_classifier: OnnxClassifier
) -> None:
    # Tolerance: dynamic int8 quantisation moves a probability by at most INT8_MAX_TOL (0.15) and
    # by INT8_MEAN_TOL (0.02) on average; the build enforces the same bounds.
    diff = np.abs(int8_classifier.predict_array(SAMPLE) - fp32_classifier.predict_array(SAMPLE))
    assert float(diff.max()) <= INT8_MAX_TOL
    assert float(diff.mean()) <= INT8_MEAN_TOL
