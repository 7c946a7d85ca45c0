from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from classifiers.base import Classifier, ModelNotFoundError, ProviderError
from classifiers.onnx import CPU, CUDA, TENSORRT, OnnxClassifier, load_classifier

HOSTILE = [
    "",
    "😀🔥💯🙈",
    "\ud800",
    "lone \udfff surrogate and \x00\x01\x1b control chars \u202e",
    "x" * 1_000_000,
    "Ceci n'est pas une pipe. これは日本語です。 Это текст. مرحبا",
    "   \n\t  ",
    "FREE entry! text WIN to 80082 now to claim your prize",
]


def check_scores(clf: OnnxClassifier, texts: list[str]) -> list[dict[str, float]]:
    out = clf.predict(texts)
    assert len(out) == len(texts)
    for row in out:
        assert tuple(row) == clf.labels
        assert all(0.0 <= v <= 1.0 for v in row.values())
    return out


def test_is_a_classifier(int8_classifier: OnnxClassifier) -> None:
    assert isinstance(int8_classifier, Classifier)
    assert int8_classifier.labels == ("toxic", "hate", "spam")
    assert int8_classifier.max_tokens == 128
    assert int8_classifier.model_version.startswith("minilm-l6-")


def test_hostile_inputs_get_scores(int8_classifier: OnnxClassifier) -> None:
    check_scores(int8_classifier, HOSTILE)
    assert int8_classifier.predict([]) == []


@given(
    st.lists(st.text(st.characters(exclude_categories=()), max_size=200), min_size=1, max_size=12)
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_arbitrary_unicode(int8_classifier: OnnxClassifier, texts: list[str]) -> None:
    check_scores(int8_classifier, texts)


def test_order_is_kept_across_buckets(fp32_classifier: OnnxClassifier) -> None:
    texts = [f"post {i}: " + "you are awful " * (i % 17) for i in range(60)] + HOSTILE
    together = fp32_classifier.predict_array(texts)
    alone = np.vstack([fp32_classifier.predict_array([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_small_token_budget_gives_same_results(
    model_dir: Path, fp32_classifier: OnnxClassifier
) -> None:
    texts = ["short", "a bit longer text here", "long " * 200, "", "mid length post about things"]
    tiny = OnnxClassifier(
        model_dir, variant="fp32", providers=[CPU], max_batch_tokens=128, max_batch_size=2
    )
    try:
        np.testing.assert_allclose(
            tiny.predict_array(texts), fp32_classifier.predict_array(texts), atol=1e-4
        )
    finally:
        tiny.close()


def test_gpu_providers_fall_back_to_cpu_and_say_why(model_dir: Path) -> None:
    with capture_logs() as logs:
        clf = load_classifier(model_dir, providers=[TENSORRT, CUDA, CPU])
    try:
        assert clf.provider == CPU
        assert clf.variant == "int8"  # auto -> int8 without a GPU
        skipped = {
            e["provider"]: e["reason"] for e in logs if e["event"] == "onnx.provider_skipped"
        }
        assert set(skipped) == {TENSORRT, CUDA}
        assert all(reason for reason in skipped.values())
        assert any(e["event"] == "onnx.provider_selected" and e["provider"] == CPU for e in logs)
        check_scores(clf, ["hello"])
    finally:
        clf.close()


def test_no_usable_provider_is_an_error(model_dir: Path) -> None:
    with pytest.raises(ProviderError):
        load_classifier(model_dir, variant="fp32", providers=[CUDA])
    with pytest.raises(ModelNotFoundError):
        load_classifier(model_dir / "absent")


async def test_apredict_matches_and_does_not_block(int8_classifier: OnnxClassifier) -> None:
    texts = ["you are an idiot " * 20] * 256
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    result = await int8_classifier.apredict(texts)
    elapsed = time.perf_counter() - started
    task.cancel()
    assert result == int8_classifier.predict(texts)
    assert ticks >= max(1, int(elapsed / 0.005) // 4)  # the loop kept running during inference


def test_single_string_is_rejected(int8_classifier: OnnxClassifier) -> None:
    with pytest.raises(TypeError):
        int8_classifier.predict("not a list")  # type: ignore[arg-type]
