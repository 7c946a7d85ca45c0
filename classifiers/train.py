"""Train the moderation model and write the small artifacts (``python -m classifiers.train``).

Two candidates are trained from one cache of MiniLM hidden states (fixed seeds, 2 CPU threads):

(a) ``frozen``   — encoder frozen, mean pooling, MLP head trained on the pooled embeddings;
(b) ``finetune`` — the top ``top_layers`` encoder layers fine-tuned with the head for a bounded
                   number of steps (head warm-started from (a)).

Loss: masked, weighted BCE (unknown labels weigh 0, weak negatives :data:`~classifiers.data.WEAK`),
``pos_weight = sqrt(neg/pos)`` per label, and per-dataset weights ``~ 1/sqrt(n)`` so no corpus
dominates. The candidate with the best mean held-out PR-AUC is kept; thresholds come from dev.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog
import torch
from torch import nn

from classifiers.base import LABELS
from classifiers.data import DEFAULT_DATA_DIR, HELD_OUT, Example
from classifiers.encoder import BASE_MODEL_NAME, base_model_dir
from classifiers.layout import ARTIFACTS_DIR
from classifiers.model import (
    ModerationModel,
    extended_mask,
    load_encoder,
    make_head,
    mean_pool,
    padded_ids,
    run_layers,
    save_artifacts,
)
from classifiers.teacher import training_examples
from classifiers.thresholds import choose_thresholds
from classifiers.tokenize import TextEncoder
from classifiers.train_metrics import auc_table, mean_pr_auc, split_counts

log = structlog.get_logger(__name__)
Array = npt.NDArray[np.float64]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    out_dir: Path = ARTIFACTS_DIR
    max_tokens: int = 128
    top_layers: int = 2
    head_width: int = 256
    head_epochs: int = 12
    finetune_steps: int = 3000
    batch_size: int = 32
    encoder_lr: float = 5e-5
    head_lr: float = 5e-4
    seed: int = 13
    threads: int = 2
    removal_precision: float = 0.9
    borderline_budget: float = 0.05
    candidates: tuple[str, ...] = field(default=("frozen", "finetune"))
    #: Teacher labels exported by ``modstream model export-labels`` (merged with the datasets).
    labels_path: Path | None = None
    include_simulated_labels: bool = False


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Data:
    """Examples with targets, weights and cached hidden states at the fine-tuning boundary."""

    def __init__(self, examples: list[Example], cache: list[torch.Tensor]) -> None:
        self.examples = examples
        self.cache = cache
        self.targets = torch.tensor([e.targets for e in examples], dtype=torch.float32)
        self.weights = torch.tensor([e.weights for e in examples], dtype=torch.float32)
        self.lengths = np.array([c.shape[0] for c in cache])

    def indices(self, split: str, dataset: str | None = None) -> list[int]:
        return [
            i
            for i, e in enumerate(self.examples)
            if e.split == split and (dataset is None or e.dataset == dataset)
        ]

    def batch(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(max(self.lengths[i] for i in idx))
        hidden = torch.zeros(len(idx), width, self.cache[0].shape[1])
        mask = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            n = self.cache[i].shape[0]
            hidden[row, :n] = self.cache[i].float()
            mask[row, :n] = 1
        return hidden, mask


def _length_batches(
    lengths: npt.NDArray[Any], idx: Sequence[int], size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Batches of similar length (little padding), in random order."""
    noisy = lengths[list(idx)] + rng.random(len(idx))
    order = [idx[j] for j in np.argsort(noisy)]
    batches = [order[s : s + size] for s in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


@torch.inference_mode()
def _build_cache(
    encoder: Any, token_ids: list[list[int]], boundary: int, progress: Progress
) -> list[torch.Tensor]:
    """Hidden states after the first ``boundary`` layers, fp16, one tensor per text."""
    cache: list[torch.Tensor] = [torch.empty(0)] * len(token_ids)
    order = np.argsort([len(t) for t in token_ids])
    started = time.monotonic()
    for step, start in enumerate(range(0, len(order), 128)):
        idx = order[start : start + 128]
        ids, mask = padded_ids(token_ids, idx)
        hidden = encoder.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        ext = extended_mask(mask, hidden.dtype)
        for layer in encoder.encoder.layer[:boundary]:
            hidden = layer(hidden, attention_mask=ext)[0]
        for row, i in enumerate(idx):
            cache[i] = hidden[row, : len(token_ids[i])].half().clone()
        if step % 100 == 0:
            progress(f"cache {start}/{len(order)} texts ({time.monotonic() - started:.0f}s)")
    return cache


def _loss_fn(
    data: _Data, train_idx: list[int]
) -> Callable[[torch.Tensor, list[int]], torch.Tensor]:
    targets, weights = data.targets, data.weights.clone()
    known = weights[train_idx] >= 1.0
    pos = (targets[train_idx] * known).sum(0)
    neg = ((1 - targets[train_idx]) * known).sum(0)
    pos_weight = torch.sqrt(neg / pos.clamp(min=1.0))
    counts: dict[str, int] = {}
    for i in train_idx:
        counts[data.examples[i].dataset] = counts.get(data.examples[i].dataset, 0) + 1
    mean_n = sum(counts.values()) / len(counts)
    ds_weight = {d: math.sqrt(mean_n / n) for d, n in counts.items()}
    row_weight = torch.tensor([ds_weight.get(e.dataset, 1.0) * e.row_weight for e in data.examples])
    bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=pos_weight)

    def loss(logits: torch.Tensor, idx: list[int]) -> torch.Tensor:
        w = weights[idx] * row_weight[idx, None]
        value: torch.Tensor = (bce(logits, targets[idx]) * w).sum() / w.sum().clamp(min=1e-6)
        return value

    return loss


@torch.inference_mode()
def _pooled(encoder: Any, data: _Data, idx: list[int], boundary: int) -> torch.Tensor:
    out = torch.zeros(len(idx), encoder.config.hidden_size)
    order = np.argsort(data.lengths[idx])
    for s in range(0, len(order), 256):
        rows = order[s : s + 256]
        hidden, mask = data.batch([idx[r] for r in rows])
        out[torch.as_tensor(rows)] = mean_pool(run_layers(encoder, hidden, mask, boundary), mask)
    return out


def _train_frozen(
    cfg: TrainConfig, encoder: Any, data: _Data, boundary: int, progress: Progress
) -> tuple[nn.Sequential, torch.Tensor]:
    progress("frozen: pooling embeddings")
    pooled = _pooled(encoder, data, list(range(len(data.examples))), boundary)
    train_idx, dev_idx = data.indices("train"), data.indices("dev")
    loss = _loss_fn(data, train_idx)
    _seed(cfg.seed)
    head = make_head(encoder.config.hidden_size, len(LABELS), cfg.head_width)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state = float("inf"), copy.deepcopy(head.state_dict())
    for epoch in range(cfg.head_epochs):
        head.train()
        perm = torch.randperm(len(train_idx), generator=gen).tolist()
        for s in range(0, len(perm), 256):
            idx = [train_idx[j] for j in perm[s : s + 256]]
            opt.zero_grad()
            torch.autograd.backward(loss(head(pooled[idx]), idx))
            opt.step()
        head.eval()
        with torch.no_grad():
            dev_loss = float(loss(head(pooled[dev_idx]), dev_idx))
        progress(f"frozen: epoch {epoch + 1}/{cfg.head_epochs} dev loss {dev_loss:.4f}")
        if dev_loss < best:
            best, best_state = dev_loss, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    head.eval()
    with torch.no_grad():
        probs = torch.sigmoid(head(pooled))
    return head, probs


def _train_finetune(
    cfg: TrainConfig,
    encoder: Any,
    head: nn.Sequential,
    data: _Data,
    boundary: int,
    progress: Progress,
) -> tuple[Any, nn.Sequential, torch.Tensor]:
    _seed(cfg.seed)
    encoder, head = copy.deepcopy(encoder), copy.deepcopy(head)
    top = encoder.encoder.layer[boundary:]
    for p in encoder.parameters():
        p.requires_grad_(False)
    for p in top.parameters():
        p.requires_grad_(True)
    train_idx = data.indices("train")
    loss = _loss_fn(data, train_idx)
    opt = torch.optim.AdamW(
        [
            {"params": top.parameters(), "lr": cfg.encoder_lr},
            {"params": head.parameters(), "lr": cfg.head_lr},
        ],
        weight_decay=0.01,
    )
    warmup = max(1, cfg.finetune_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / cfg.finetune_steps)
    )
    rng = np.random.default_rng(cfg.seed)
    batches: list[list[int]] = []
    started, running = time.monotonic(), 0.0
    for step in range(cfg.finetune_steps):
        if not batches:
            batches = _length_batches(data.lengths, train_idx, cfg.batch_size, rng)
        idx = batches.pop()
        hidden, mask = data.batch(idx)
        top.train()
        head.train()
        logits = head(mean_pool(run_layers(encoder, hidden, mask, boundary), mask))
        value = loss(logits, idx)
        opt.zero_grad()
        torch.autograd.backward(value)
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * float(value) if step else float(value)
        if step % 250 == 0 or step == cfg.finetune_steps - 1:
            progress(
                f"finetune: step {step + 1}/{cfg.finetune_steps} loss {running:.4f}"
                f" ({time.monotonic() - started:.0f}s)"
            )
    encoder.eval()
    head.eval()
    pooled = _pooled(encoder, data, list(range(len(data.examples))), boundary)
    with torch.no_grad():
        probs = torch.sigmoid(head(pooled))
    return encoder, head, probs


def train(cfg: TrainConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Train the candidates, keep the best, write artifacts to ``cfg.out_dir``; returns metadata."""
    say: Progress = progress or (lambda msg: log.info("train.progress", step=msg))
    started = time.monotonic()
    torch.set_num_threads(cfg.threads)
    _seed(cfg.seed)
    examples = training_examples(
        cfg.data_dir, cfg.labels_path, include_simulated=cfg.include_simulated_labels
    )
    say(f"loaded {len(examples)} examples")
    tokens = TextEncoder(base_model_dir() / "tokenizer.json", cfg.max_tokens).encode(
        [e.text for e in examples]
    )
    encoder = load_encoder()
    encoder.train(False)
    boundary = encoder.config.num_hidden_layers - cfg.top_layers
    data = _Data(examples, _build_cache(encoder, tokens, boundary, say))
    splits = ["all:dev", *HELD_OUT]

    head, frozen_probs = _train_frozen(cfg, encoder, data, boundary, say)
    results: dict[str, Any] = {
        "frozen": (encoder, head, frozen_probs.numpy().astype(np.float64), 0)
    }
    if "finetune" in cfg.candidates:
        ft_encoder, ft_head, ft_probs = _train_finetune(cfg, encoder, head, data, boundary, say)
        results["finetune"] = (
            ft_encoder,
            ft_head,
            ft_probs.numpy().astype(np.float64),
            cfg.top_layers,
        )

    comparison: dict[str, Any] = {}
    for name, (_, _, probs, _) in results.items():
        table = auc_table(data, probs, splits)
        held = {k: v for k, v in table.items() if k != "all:dev"}
        comparison[name] = {
            "splits": table,
            "held_out_mean_pr_auc": round(mean_pr_auc(held), 4),
            "dev_mean_pr_auc": round(mean_pr_auc({"d": table["all:dev"]}), 4),
        }
    chosen = max(comparison, key=lambda n: comparison[n]["held_out_mean_pr_auc"])
    enc, head, probs, top_layers = results[chosen]
    dev = data.indices("dev")
    thresholds, tradeoff = choose_thresholds(
        [examples[i] for i in dev], probs[dev], LABELS, cfg.removal_precision, cfg.borderline_budget
    )
    meta: dict[str, Any] = {
        "base_model": BASE_MODEL_NAME,
        "labels": list(LABELS),
        "max_tokens": cfg.max_tokens,
        "head_width": cfg.head_width,
        "top_layers": top_layers,
        "chosen": chosen,
        "comparison": comparison,
        "thresholds": thresholds,
        "tradeoff": tradeoff,
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in asdict(cfg).items()
            if k not in {"data_dir", "out_dir"}
        },
        "counts": {f"{d}:{s}": n for (d, s), n in sorted(split_counts(examples).items())},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_seconds": round(time.monotonic() - started, 1),
    }
    save_artifacts(ModerationModel(enc, head), top_layers, meta, cfg.out_dir)
    say(f"chose {chosen}; artifacts in {cfg.out_dir}")
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=ARTIFACTS_DIR)
    parser.add_argument("--steps", type=int, default=TrainConfig.finetune_steps)
    parser.add_argument("--top-layers", type=int, default=TrainConfig.top_layers)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument(
        "--thresholds-only", action="store_true", help="Re-choose thresholds of the saved model."
    )
    parser.add_argument(
        "--borderline-budget",
        type=float,
        default=TrainConfig.borderline_budget,
        help="Most share of traffic (at the 10 %% harmful prior) left borderline: the review_at"
        " thresholds are lowered until it is reached. Every borderline post is a frontier call.",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.borderline_budget <= 1.0:
        parser.error(f"--borderline-budget must be a share in [0, 1], not {args.borderline_budget}")
    cfg = TrainConfig(
        data_dir=args.data_dir,
        out_dir=args.out,
        finetune_steps=args.steps,
        top_layers=args.top_layers,
        seed=args.seed,
        borderline_budget=args.borderline_budget,
    )
    say: Progress = lambda msg: print(msg, flush=True)  # noqa: E731
    if args.thresholds_only:
        from classifiers.retune import retune_thresholds

        retune_thresholds(cfg, say)
    else:
        train(cfg, progress=say)


if __name__ == "__main__":
    main()
