from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from classifiers.calibration import apply, fit_temperature, logit, sigmoid, source_weights
from classifiers.manifest import MANIFEST
from classifiers.onnx import load_classifier

LABELS = ("toxic", "hate", "spam")


def test_temperature_one_or_missing_is_the_identity() -> None:
    probs = np.array([[0.1, 0.5, 0.99]], dtype=np.float32)
    assert apply(probs, LABELS, {}) is probs
    assert apply(probs, LABELS, {"toxic": 1.0}) is probs


def test_a_temperature_keeps_order_and_the_half_point() -> None:
    probs = np.array([[0.2, 0.5, 0.5], [0.6, 0.5, 0.5], [0.95, 0.5, 0.5]], dtype=np.float32)
    out = apply(probs, LABELS, {"toxic": 2.0})
    assert np.all(np.diff(out[:, 0]) > 0)
    assert out[2, 0] < 0.95 and out[0, 0] > 0.2  # T > 1 softens both ends
    np.testing.assert_allclose(out[:, 1:], probs[:, 1:])
    np.testing.assert_allclose(
        apply(np.array([[0.5, 0.5, 0.5]], np.float32), LABELS, {"toxic": 3.0}), 0.5
    )


def test_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(3)
    true_logits = rng.normal(scale=2.0, size=20_000)
    y = (rng.random(20_000) < sigmoid(true_logits)).astype(np.float64)
    overconfident = true_logits * 3.0  # a model three times too sure of itself
    t = fit_temperature(overconfident, y, np.ones_like(y))
    assert 2.6 < t < 3.4
    assert fit_temperature(overconfident, np.ones_like(y), np.ones_like(y)) == 1.0  # one class


def test_every_source_weighs_the_same() -> None:
    w = source_weights(["a", "a", "a", "b"])
    assert w[:3].sum() == w[3:].sum()


def test_logit_inverts_sigmoid() -> None:
    x = np.array([-5.0, 0.0, 3.0])
    np.testing.assert_allclose(logit(sigmoid(x)), x, atol=1e-9)


def test_the_classifier_applies_the_manifest_temperatures(model_dir: Path, tmp_path: Path) -> None:
    for item in model_dir.iterdir():
        if item.is_file() and item.name != MANIFEST:
            (tmp_path / item.name).symlink_to(item)
    manifest = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    temps = {"toxic": 2.0, "hate": 0.5, "spam": 1.0}
    manifest["calibration"] = {"method": "temperature", "temperatures": temps}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    texts = ["you are an idiot", "have a nice day", "WIN a free prize now, text 80082"] * 20
    plain = load_classifier(model_dir, variant="int8", providers=["CPUExecutionProvider"])
    calibrated = load_classifier(tmp_path, variant="int8", providers=["CPUExecutionProvider"])
    try:
        raw = plain.predict_array(texts)
        got = calibrated.predict_array(texts)
        assert not plain.temperatures
        assert calibrated.temperatures == temps
        np.testing.assert_allclose(got, apply(raw, plain.labels, temps), atol=1e-5)
        started = time.perf_counter()
        for _ in range(100):
            apply(raw, plain.labels, temps)
        per_post_us = (time.perf_counter() - started) / (100 * len(texts)) * 1e6
        print(f"calibration cost: {per_post_us:.3f} us per post")
    finally:
        plain.close()
        calibrated.close()
