"""Training recipes on cached MiniLM features (:mod:`classifiers.features`), for LODO and the model.

A :class:`Recipe` names what is trained (a head on the frozen encoder, or the top ``k`` encoder
layers with the head) and how it meets domain shift:

- ``weighting`` — ``sqrt``: a source's rows weigh ``1/sqrt(n)`` each, so its total grows as
  ``sqrt(n)`` (today's training); ``balanced``: every batch draws the same number of rows from
  each source (per-source balanced sampling, sources mixed within each batch);
- ``label_smoothing`` — known targets move ``eps/2`` towards the other class;
- ``adversarial`` — a source classifier on the head's hidden layer behind a gradient reversal
  (domain-adversarial training): the head is pushed towards features that do not tell the
  sources apart; the weight is the reversal's strength.

Every function is deterministic for a seed (fixed torch/numpy generators, 2 CPU threads).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from classifiers.data import Example
from classifiers.features import FeatureCache

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Recipe:
    name: str
    top_layers: int = 0
    weighting: Literal["sqrt", "balanced"] = "sqrt"
    label_smoothing: float = 0.0
    adversarial: float = 0.0
    head_steps: int = 160
    finetune_steps: int = 300
    batch_size: int = 512
    finetune_batch: int = 32
    head_width: int = 256


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.strength * grad, None


class Batches:
    """Index batches for a recipe: uniform shuffles (``sqrt``) or equal rows per source."""

    def __init__(
        self, sources: Sequence[str], idx: IntArray, recipe: Recipe, size: int, seed: int
    ) -> None:
        self._rng = np.random.default_rng(seed)
        self._idx = idx
        self._size = size
        self._balanced = recipe.weighting == "balanced"
        names = sorted({sources[i] for i in idx})
        self._groups = [np.array([i for i in idx if sources[i] == s]) for s in names]
        self._queue: list[IntArray] = []

    def next(self) -> IntArray:
        if self._balanced:
            per = max(1, self._size // len(self._groups))
            return np.concatenate([self._rng.choice(g, per) for g in self._groups])
        if not self._queue:
            perm = self._rng.permutation(self._idx)
            self._queue = [perm[s : s + self._size] for s in range(0, len(perm), self._size)]
        return self._queue.pop()


class Objective:
    """Masked BCE with ``pos_weight = sqrt(neg/pos)``, source weights and label smoothing."""

    def __init__(self, examples: Sequence[Example], idx: IntArray, recipe: Recipe) -> None:
        self.targets = torch.tensor([e.targets for e in examples], dtype=torch.float32)
        self.weights = torch.tensor([e.weights for e in examples], dtype=torch.float32)
        known = self.weights[idx] >= 1.0
        pos = (self.targets[idx] * known).sum(0)
        neg = ((1 - self.targets[idx]) * known).sum(0)
        self._bce = nn.BCEWithLogitsLoss(
            reduction="none", pos_weight=torch.sqrt(neg / pos.clamp(min=1.0))
        )
        counts: dict[str, int] = {}
        for i in idx:
            counts[examples[i].dataset] = counts.get(examples[i].dataset, 0) + 1
        mean_n = sum(counts.values()) / max(1, len(counts))
        per_source = {
            d: (math.sqrt(mean_n / n) if recipe.weighting == "sqrt" else 1.0)
            for d, n in counts.items()
        }
        self.row_weight = torch.tensor(
            [per_source.get(e.dataset, 0.0) * e.row_weight for e in examples]
        )
        self.sources = sorted(counts)
        self.source_id = torch.tensor(
            [self.sources.index(e.dataset) if e.dataset in counts else 0 for e in examples]
        )
        self._eps = recipe.label_smoothing

    def __call__(self, logits: torch.Tensor, idx: IntArray) -> torch.Tensor:
        rows = torch.as_tensor(idx)
        target = self.targets[rows] * (1 - self._eps) + self._eps / 2
        w = self.weights[rows] * self.row_weight[rows, None]
        value: torch.Tensor = (self._bce(logits, target) * w).sum() / w.sum().clamp(min=1e-6)
        return value


def _adversary(recipe: Recipe, objective: Objective) -> nn.Module | None:
    if recipe.adversarial <= 0:
        return None
    return nn.Linear(recipe.head_width, len(objective.sources))


def _step_loss(
    head: nn.Sequential,
    adversary: nn.Module | None,
    recipe: Recipe,
    objective: Objective,
    pooled: torch.Tensor,
    batch: IntArray,
) -> torch.Tensor:
    hidden = head[:3](pooled)
    loss = objective(head[3](hidden), batch)
    if adversary is not None:
        reversed_ = _Reverse.apply(hidden, recipe.adversarial)  # type: ignore[no-untyped-call]
        guess = adversary(reversed_)
        domain = nn.functional.cross_entropy(guess, objective.source_id[torch.as_tensor(batch)])
        loss = loss + domain
    return loss


def train_head(cache: FeatureCache, idx: IntArray, recipe: Recipe, seed: int) -> nn.Sequential:
    """An MLP head on the frozen encoder's pooled features of rows ``idx``."""
    from classifiers.model import make_head

    seed_everything(seed)
    pooled = torch.from_numpy(cache.pooled)
    n_labels = len(cache.examples[0].targets)
    head = make_head(pooled.shape[1], n_labels, recipe.head_width)
    objective = Objective(cache.examples, idx, recipe)
    adversary = _adversary(recipe, objective)
    params = list(head.parameters()) + (list(adversary.parameters()) if adversary else [])
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    sources = [e.dataset for e in cache.examples]
    batches = Batches(sources, idx, recipe, recipe.batch_size, seed)
    head.train()
    for _ in range(recipe.head_steps):
        batch = batches.next()
        loss = _step_loss(head, adversary, recipe, objective, pooled[batch], batch)
        opt.zero_grad()
        torch.autograd.backward(loss)
        opt.step()
    return head.eval()


def _states(cache: FeatureCache, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(int(cache.offsets[i + 1] - cache.offsets[i]) for i in rows)
    hidden = torch.zeros(len(rows), width, cache.states.shape[1])
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for r, i in enumerate(rows):
        tokens = torch.from_numpy(cache.tokens(i).astype(np.float32))
        hidden[r, : tokens.shape[0]] = tokens
        mask[r, : tokens.shape[0]] = 1
    return hidden, mask


def _forward_top(
    encoder: Any, cache: FeatureCache, rows: Sequence[int], top_layers: int
) -> torch.Tensor:
    """Pooled output of layers ``boundary..end``; only the last ``top_layers`` need gradients."""
    from classifiers.model import extended_mask, mean_pool

    hidden, mask = _states(cache, rows)
    ext = extended_mask(mask, hidden.dtype)
    layers = encoder.encoder.layer
    frozen_until = len(layers) - top_layers
    for depth in range(cache.boundary, len(layers)):
        if depth < frozen_until:
            with torch.no_grad():
                hidden = layers[depth](hidden, attention_mask=ext)[0]
        else:
            hidden = layers[depth](hidden, attention_mask=ext)[0]
    return mean_pool(hidden, mask)


def finetune_top(
    encoder: Any,
    head: nn.Sequential,
    cache: FeatureCache,
    idx: IntArray,
    recipe: Recipe,
    seed: int,
) -> tuple[Any, nn.Sequential]:
    """Fine-tune the top ``recipe.top_layers`` layers with the head (warm-started) on ``idx``."""
    if recipe.top_layers > len(encoder.encoder.layer) - cache.boundary:
        raise ValueError(f"top_layers {recipe.top_layers} needs a cache boundary below the top")
    seed_everything(seed)
    encoder, head = copy.deepcopy(encoder), copy.deepcopy(head)
    top = encoder.encoder.layer[len(encoder.encoder.layer) - recipe.top_layers :]
    for p in encoder.parameters():
        p.requires_grad_(False)
    for p in top.parameters():
        p.requires_grad_(True)
    objective = Objective(cache.examples, idx, recipe)
    adversary = _adversary(recipe, objective)
    groups: list[dict[str, Any]] = [
        {"params": list(top.parameters()), "lr": 5e-5},
        {"params": list(head.parameters()), "lr": 5e-4},
    ]
    if adversary is not None:
        groups.append({"params": list(adversary.parameters()), "lr": 5e-4})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = recipe.finetune_steps
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps)
    )
    sources = [e.dataset for e in cache.examples]
    batches = Batches(sources, idx, recipe, recipe.finetune_batch, seed)
    top.train()
    head.train()
    for _ in range(steps):
        batch = batches.next()
        pooled = _forward_top(encoder, cache, batch.tolist(), recipe.top_layers)
        loss = _step_loss(head, adversary, recipe, objective, pooled, batch)
        opt.zero_grad()
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        sched.step()
    return encoder.eval(), head.eval()


@torch.inference_mode()
def logits_of(
    cache: FeatureCache,
    rows: IntArray,
    head: nn.Sequential,
    encoder: Any = None,
    top_layers: int = 0,
) -> npt.NDArray[np.float64]:
    """Logits ``(len(rows), labels)``: the head on cached pooled features, or on the top layers."""
    if top_layers == 0 or encoder is None:
        out: torch.Tensor = head(torch.from_numpy(cache.pooled[rows]))
        return out.numpy().astype(np.float64)
    result = np.zeros((len(rows), len(cache.examples[0].targets)))
    lengths = cache.offsets[rows + 1] - cache.offsets[rows]
    order = np.argsort(lengths, kind="stable")
    for s in range(0, len(order), 128):
        part = order[s : s + 128]
        pooled = _forward_top(encoder, cache, rows[part].tolist(), top_layers)
        result[part] = head(pooled).numpy()
    return result
