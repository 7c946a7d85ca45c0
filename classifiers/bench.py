"""Throughput and latency of the ONNX variants against the same model in plain torch."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from classifiers.data import DEFAULT_DATA_DIR, load_examples

Predict = Callable[[Sequence[str]], Any]


def sample_texts(data_dir: Path = DEFAULT_DATA_DIR, n: int = 2000, seed: int = 7) -> list[str]:
    """A realistic post-length mix: uniform sample over every dataset's texts."""
    texts = [e.text for e in load_examples(data_dir)]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def measure(predict: Predict, texts: Sequence[str], batch_size: int) -> dict[str, float]:
    """Posts/s and per-batch latency (ms) over ``texts`` in arrival order."""
    predict(texts[: min(batch_size, len(texts))])  # warm-up
    latencies = []
    started = time.perf_counter()
    for s in range(0, len(texts), batch_size):
        t0 = time.perf_counter()
        predict(texts[s : s + batch_size])
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "batch_size": batch_size,
        "posts_per_s": round(len(texts) / elapsed, 1),
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p95": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2),
    }


def torch_peer(model_dir: Path, threads: int) -> Predict:
    """The same fine-tuned model in torch: HF fast tokenizer, padding to the longest in batch."""
    import torch
    from transformers import AutoTokenizer

    from classifiers.model import load_model
    from classifiers.text import normalize

    torch.set_num_threads(threads)
    model, meta = load_model(attn="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))  # type: ignore[no-untyped-call]
    max_tokens = int(meta["max_tokens"])

    @torch.inference_mode()
    def predict(texts: Sequence[str]) -> Any:
        enc = tokenizer(
            [normalize(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=max_tokens,
            return_tensors="pt",
        )
        return model(enc["input_ids"], enc["attention_mask"]).numpy()

    return predict
