"""A disk cache of MiniLM features for leave-one-dataset-out experiments.

One MiniLM pass over a per-source sample of the datasets stores, per text, the mean-pooled output
of the last layer (what a frozen-encoder head trains on) and the token states after layer
``boundary`` (what top-k fine-tuning starts from, ``k <= layers - boundary``). Every recipe of
:mod:`classifiers.lodo` then trains from this cache instead of running the encoder again.

The sample takes at most ``per_source`` texts of each source, in a fixed hash order, so no source
dominates the cache (or the experiments) by size and a rerun reads the same texts.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from classifiers.data import Example
from classifiers.text import normalize

Progress = Callable[[str], None]
FloatArray = npt.NDArray[np.float32]
FORMAT = 1


def sample_per_source(examples: Sequence[Example], per_source: int) -> list[Example]:
    """At most ``per_source`` examples of each dataset, chosen by a hash of the text (stable)."""

    def key(e: Example) -> bytes:
        return hashlib.blake2b(normalize(e.text).encode("utf-8"), digest_size=8).digest()

    out: list[Example] = []
    for source in sorted({e.dataset for e in examples}):
        rows = sorted((e for e in examples if e.dataset == source), key=key)
        out.extend(rows[:per_source])
    return out


@dataclass(frozen=True)
class FeatureCache:
    """Features aligned with ``examples``: pooled last layer and token states at ``boundary``."""

    examples: list[Example]
    pooled: FloatArray  # (n, hidden) float32
    states: npt.NDArray[np.float16]  # (total tokens, hidden) float16
    offsets: npt.NDArray[np.int64]  # (n + 1,) row i's tokens are states[offsets[i]:offsets[i+1]]
    boundary: int
    #: Fingerprint of the texts, splits and encoder boundary the features were computed for.
    tag: str = ""

    def tokens(self, i: int) -> npt.NDArray[np.float16]:
        return self.states[self.offsets[i] : self.offsets[i + 1]]


def _fingerprint(examples: Sequence[Example], boundary: int, max_tokens: int) -> str:
    digest = hashlib.sha256(f"{FORMAT}:{boundary}:{max_tokens}".encode())
    for e in examples:
        digest.update(f"{e.dataset}\0{e.split}\0{e.text}\0".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


@torch.inference_mode()
def _encode(
    token_ids: list[list[int]], boundary: int, progress: Progress
) -> tuple[FloatArray, list[npt.NDArray[np.float16]]]:
    from classifiers.model import extended_mask, load_encoder, mean_pool, padded_ids

    encoder = load_encoder()
    encoder.train(False)
    n_layers = encoder.config.num_hidden_layers
    pooled = np.zeros((len(token_ids), encoder.config.hidden_size), dtype=np.float32)
    states: list[npt.NDArray[np.float16]] = [np.zeros((0, 0), np.float16)] * len(token_ids)
    order = np.argsort([len(t) for t in token_ids], kind="stable")
    started = time.monotonic()
    for step, start in enumerate(range(0, len(order), 64)):
        idx = order[start : start + 64]
        ids, mask = padded_ids(token_ids, idx)
        hidden = encoder.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        ext = extended_mask(mask, hidden.dtype)
        for depth, layer in enumerate(encoder.encoder.layer[:n_layers], start=1):
            hidden = layer(hidden, attention_mask=ext)[0]
            if depth == boundary:
                for row, i in enumerate(idx):
                    states[i] = hidden[row, : len(token_ids[i])].half().numpy().copy()
        pooled[idx] = mean_pool(hidden, mask).numpy()
        if step % 50 == 0:
            rate = (start + len(idx)) / max(time.monotonic() - started, 1e-9)
            progress(f"features: {start + len(idx)}/{len(order)} texts ({rate:.0f}/s)")
    return pooled, states


def load_or_build(
    examples: Sequence[Example],
    cache_dir: Path,
    boundary: int = 4,
    max_tokens: int = 128,
    progress: Progress | None = None,
) -> FeatureCache:
    """The cache for exactly these examples (built on first use, then read from ``cache_dir``)."""
    from classifiers.encoder import base_model_dir
    from classifiers.tokenize import TextEncoder

    say: Progress = progress or (lambda _msg: None)
    rows = list(examples)
    tag = _fingerprint(rows, boundary, max_tokens)
    path = cache_dir / f"features-{tag}.npz"
    if path.is_file():
        say(f"features: reading {path}")
        with np.load(path) as saved:
            return FeatureCache(
                rows, saved["pooled"], saved["states"], saved["offsets"], boundary, tag
            )
    token_ids = TextEncoder(base_model_dir() / "tokenizer.json", max_tokens).encode(
        [e.text for e in rows]
    )
    started = time.monotonic()
    pooled, states = _encode(token_ids, boundary, say)
    offsets = np.concatenate([[0], np.cumsum([s.shape[0] for s in states])]).astype(np.int64)
    flat = np.concatenate(states).astype(np.float16)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, pooled=pooled, states=flat, offsets=offsets)
    partial.rename(path)
    meta: dict[str, float] = {"texts": len(rows), "tokens": int(offsets[-1]), "boundary": boundary}
    meta["seconds"] = round(time.monotonic() - started, 1)
    path.with_suffix(".json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
    say(f"features: {len(rows)} texts in {meta['seconds']}s -> {path}")
    return FeatureCache(rows, pooled, flat, offsets, boundary, tag)
