"""Re-choose the saved model's thresholds on the dev split (``--thresholds-only``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from classifiers.base import LABELS
from classifiers.data import load_examples
from classifiers.encoder import base_model_dir
from classifiers.thresholds import choose_thresholds
from classifiers.tokenize import TextEncoder
from classifiers.train import Progress, TrainConfig, log


def retune_thresholds(cfg: TrainConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Re-choose thresholds for the saved model (torch on the dev split); updates the metadata."""
    from classifiers.layout import META_FILE
    from classifiers.model import load_model

    say: Progress = progress or (lambda msg: log.info("train.progress", step=msg))
    torch.set_num_threads(cfg.threads)
    model, meta = load_model(cfg.out_dir)
    dev = [e for e in load_examples(cfg.data_dir) if e.split == "dev"]
    encoder = TextEncoder(base_model_dir() / "tokenizer.json", int(meta["max_tokens"]))
    ids = encoder.encode([e.text for e in dev])
    order = np.argsort([len(row) for row in ids])
    probs = np.zeros((len(dev), len(LABELS)))
    with torch.inference_mode():
        for s in range(0, len(order), 128):
            rows = order[s : s + 128]
            input_ids, mask = encoder.pad([ids[i] for i in rows])
            probs[rows] = model(torch.from_numpy(input_ids), torch.from_numpy(mask)).numpy()
    say(f"scored {len(dev)} dev texts")
    meta["thresholds"], meta["tradeoff"] = choose_thresholds(
        dev, probs, LABELS, cfg.removal_precision, cfg.borderline_budget
    )
    path = cfg.out_dir / META_FILE
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta
