"""Compare training recipes by LODO, and train the winner (``python -m classifiers.lodo_run``).

1. Sample at most ``--per-source`` texts per source and cache their MiniLM features once
   (:mod:`classifiers.features`, under ``--cache-dir``).
2. Run every recipe of :data:`RECIPES` (or ``--recipes``) through leave-one-dataset-out
   (:mod:`classifiers.lodo`) and summarise each: matrix, headline ROC-AUC, temperatures, policy
   figures, seconds per fold.
3. Keep the recipe with the best ``lodo_mean_roc_auc`` (ties: the better minimum), train it on the
   ``train`` split of every source, and write artifacts to ``--out`` with the LODO temperatures
   (``calibration``) and the thresholds chosen on its calibrated out-of-source scores.

``--report`` writes every recipe's summary as JSON (what the model card quotes).
``--attach-to DIR`` records one recipe's figures in artifacts that recipe trained
(:mod:`classifiers.lodo_attach`), e.g. the served model's.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classifiers.base import LABELS, ModelBuildError
from classifiers.data import DEFAULT_DATA_DIR, load_examples
from classifiers.encoder import BASE_MODEL_NAME
from classifiers.features import FeatureCache, load_or_build, sample_per_source
from classifiers.lodo import (
    BORDERLINE_BUDGET,
    LodoRun,
    calibrated,
    fold,
    run,
    sources_with,
    summarise,
    thresholds_for,
)
from classifiers.lodo_attach import attach, check_attachable, lodo_block
from classifiers.lodo_train import Recipe, finetune_top, train_head

DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".modstream" / "lodo-cache"
BASE = Recipe("frozen")
RECIPES: tuple[Recipe, ...] = (
    BASE,
    replace(BASE, name="frozen-smooth", label_smoothing=0.1),
    replace(BASE, name="frozen-balanced", weighting="balanced"),
    replace(BASE, name="frozen-adversarial", adversarial=0.3),
    replace(BASE, name="frozen-long", head_steps=640),
    replace(BASE, name="frozen-long-smooth", head_steps=640, label_smoothing=0.1),
    replace(BASE, name="frozen-long-balanced", head_steps=640, weighting="balanced"),
    replace(BASE, name="frozen-long-adversarial", head_steps=640, adversarial=0.3),
    replace(BASE, name="top1", top_layers=1),
    replace(BASE, name="top2", top_layers=2),
)


def _say(msg: str) -> None:
    print(msg, flush=True)


def full_finetune_step_seconds(cache: FeatureCache, batch: int = 32, steps: int = 3) -> float:
    """Measured seconds of one optimiser step of the whole encoder (embeddings + all layers)."""
    from classifiers.encoder import base_model_dir
    from classifiers.model import ModerationModel, load_encoder, make_head
    from classifiers.tokenize import TextEncoder

    encoder = load_encoder()
    model = ModerationModel(encoder, make_head(encoder.config.hidden_size, len(LABELS), 256))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    tok = TextEncoder(base_model_dir() / "tokenizer.json", 128)
    texts = [e.text for e in cache.examples[:: max(1, len(cache.examples) // batch)][:batch]]
    ids, mask = tok.pad(tok.encode(texts))
    x, m = torch.from_numpy(ids), torch.from_numpy(mask)
    target = torch.zeros(len(texts), len(LABELS))
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.logits(x, m), target)
        opt.zero_grad()
        torch.autograd.backward(loss)
        opt.step()
        times.append(time.perf_counter() - started)
    return round(float(np.median(times[1:])), 3)


def fold_logits_path(
    cache_dir: Path, cache: FeatureCache, recipe: Recipe, seed: int, source: str
) -> Path:
    """Where one fold's out-of-source logits are kept (keyed by features, seed, recipe, fold).

    Folds are independent (each trains from the same seed on its own copy of the encoder), so a
    fold computed in one run is the same fold in any other: ``--sources`` runs add up.
    """
    key = json.dumps([cache.tag, seed, asdict(recipe), [source]], sort_keys=True)
    return cache_dir / f"lodo-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def fold_logits(
    cache: FeatureCache,
    recipe: Recipe,
    sources: Sequence[str],
    seed: int,
    cache_dir: Path,
    encoder: Callable[[], Any] | None,
) -> LodoRun:
    """Out-of-source logits of ``recipe`` for every fold in ``sources``, cached per fold.

    ``encoder`` loads the MiniLM encoder a top-k recipe fine-tunes; it is called only for a fold
    that is not cached, so a rerun that only summarises never loads it.
    """
    out = LodoRun(recipe, np.full((len(cache.examples), len(LABELS)), np.nan))
    for source in sources:
        path = fold_logits_path(cache_dir, cache, recipe, seed, source)
        if path.is_file():
            with np.load(path) as saved:
                part = LodoRun(recipe, saved["logits"], json.loads(str(saved["seconds"])))
            _say(f"lodo {recipe.name}: {source} read {path}")
        else:
            trained = encoder() if encoder is not None and recipe.top_layers else None
            part = run(cache, recipe, [source], seed, trained, _say)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, logits=part.logits, seconds=json.dumps(part.seconds_per_fold))
        _, test_idx = fold(cache.examples, source)
        out.logits[test_idx] = part.logits[test_idx]
        out.seconds_per_fold[source] = part.seconds_per_fold.get(source, 0.0)
    return out


@functools.cache
def _encoder() -> Any:
    """The MiniLM encoder in eval mode, loaded once and only when a fold has to fine-tune it."""
    from classifiers.model import load_encoder

    encoder = load_encoder()
    encoder.train(False)
    return encoder


def compare(
    cache: FeatureCache,
    recipes: Sequence[Recipe],
    seed: int,
    budget: float,
    cache_dir: Path,
    only: Sequence[str] = (),
) -> dict[str, Any]:
    """LODO summary per recipe (every source with a label that has both classes is a fold).

    Each fold's out-of-source logits are kept in ``cache_dir`` (:func:`fold_logits_path`), so a
    rerun only summarises and folds computed by separate ``--sources`` runs combine.
    """
    sources = [s for s in sources_with(cache.examples, LABELS) if not only or s in only]
    results: dict[str, Any] = {}
    for recipe in recipes:
        lodo = fold_logits(cache, recipe, sources, seed, cache_dir, _encoder)
        summary = summarise(cache.examples, lodo, budget)
        summary["config"] = asdict(recipe)
        results[recipe.name] = {"summary": summary, "logits": lodo.logits}
        _say(
            f"{recipe.name}: mean {summary['lodo_mean_roc_auc']} min {summary['lodo_min_roc_auc']}"
            f" ({summary['lodo_min_cell']}) borderline {summary['policy']['borderline_share']}"
            f" precision_min {summary['policy']['remove_precision_min']} ({summary['seconds']}s)"
        )
    return results


def _rank(summary: dict[str, Any]) -> tuple[float, float]:
    return (summary["lodo_mean_roc_auc"] or 0.0, summary["lodo_min_roc_auc"] or 0.0)


def train_winner(
    cache: FeatureCache,
    results: dict[str, Any],
    recipes: Sequence[Recipe],
    seed: int,
    budget: float,
    out: Path,
    extra: dict[str, Any],
    choose: str | None = None,
) -> dict[str, Any]:
    """Train the best recipe on every source's train split; write artifacts and metadata."""
    from classifiers.model import ModerationModel, load_encoder, save_artifacts

    started = time.monotonic()
    ranked = sorted(recipes, key=lambda r: _rank(results[r.name]["summary"]), reverse=True)
    chosen = next(r for r in ranked if choose is None or r.name == choose)
    summary = results[chosen.name]["summary"]
    examples = cache.examples
    train_idx = np.array([i for i, e in enumerate(examples) if e.split == "train"], dtype=np.int64)
    encoder = load_encoder()
    encoder.train(False)
    head = train_head(cache, train_idx, chosen, seed)
    if chosen.top_layers:
        encoder, head = finetune_top(encoder, head, cache, train_idx, chosen, seed)
    logits = results[chosen.name]["logits"]
    scored = [i for i in range(len(examples)) if not np.isnan(logits[i]).all()]
    probs = calibrated(logits[scored], summary["temperatures"])
    thresholds, tradeoff = thresholds_for([examples[i] for i in scored], probs, budget)
    comparison = {
        name: {k: r["summary"][k] for k in ("lodo_mean_roc_auc", "lodo_min_roc_auc")}
        for name, r in results.items()
    }
    meta: dict[str, Any] = {
        "base_model": BASE_MODEL_NAME,
        "labels": list(LABELS),
        "max_tokens": 128,
        "head_width": chosen.head_width,
        "top_layers": chosen.top_layers,
        "chosen": chosen.name,
        "ranking": [r.name for r in ranked],
        "comparison": comparison,
        "thresholds": thresholds,
        "tradeoff": tradeoff,
        "calibration": {"method": "temperature", "temperatures": summary["temperatures"]},
        "lodo": lodo_block(chosen, summary, extra),
        "config": {"recipe": asdict(chosen), "seed": seed, "borderline_budget": budget, **extra},
        "counts": {
            f"{d}:{s}": n
            for (d, s), n in sorted(Counter((e.dataset, e.split) for e in examples).items())
        },
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_seconds": round(time.monotonic() - started, 1),
    }
    save_artifacts(ModerationModel(encoder, head), chosen.top_layers, meta, out)
    _say(f"chose {chosen.name}; artifacts in {out}")
    return meta


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--per-source", type=int, default=5000)
    parser.add_argument("--recipes", nargs="*", default=[r.name for r in RECIPES])
    parser.add_argument("--finetune-steps", type=int, default=BASE.finetune_steps)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--budget", type=float, default=BORDERLINE_BUDGET)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="Write the winner's artifacts.")
    parser.add_argument(
        "--choose",
        default=None,
        help="Train this compared recipe instead of the best (e.g. when the best fails the"
        " int8 build's parity gate).",
    )
    parser.add_argument(
        "--attach-to",
        type=Path,
        default=None,
        help="Write the (single) recipe's LODO figures into these artifacts' training.json: the"
        " recipe that trained them, e.g. the served model's `top2 --finetune-steps 3000`.",
    )
    parser.add_argument("--measure-full-step", action="store_true")
    parser.add_argument(
        "--sources", nargs="*", default=[], help="Only these left-out sources (default: all)."
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    known = {r.name: r for r in RECIPES}
    unknown = [n for n in args.recipes if n not in known]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {sorted(known)}")
    recipes = [replace(known[n], finetune_steps=args.finetune_steps) for n in args.recipes]
    if args.attach_to is not None:
        if len(recipes) != 1:
            parser.error("--attach-to needs exactly one recipe (the one that trained them)")
        try:  # before hours of folds, not after
            check_attachable(args.attach_to, recipes[0])
        except ModelBuildError as exc:
            parser.error(str(exc))
    started = time.monotonic()
    sample = sample_per_source(load_examples(args.data_dir), args.per_source)
    cache = load_or_build(sample, args.cache_dir, progress=_say)
    extra: dict[str, Any] = {"per_source": args.per_source, "texts": len(sample)}
    if args.measure_full_step:
        extra["full_finetune_step_seconds"] = full_finetune_step_seconds(cache)
        _say(f"full fine-tuning: {extra['full_finetune_step_seconds']}s per step of 32")
    results = compare(cache, recipes, args.seed, args.budget, args.cache_dir, args.sources)
    if args.report is not None:
        doc = {name: r["summary"] for name, r in results.items()} | {"_extra": extra}
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.attach_to is not None:
        block = attach(args.attach_to, recipes[0], results[recipes[0].name]["summary"], extra)
        _say(
            f"attached {recipes[0].name} LODO (mean {block['lodo_mean_roc_auc']}, min"
            f" {block['lodo_min_roc_auc']}, folds {', '.join(block['folds'])}) to"
            f" {args.attach_to}; rebuild with `modstream model build --force`"
        )
    if args.out is not None:
        train_winner(cache, results, recipes, args.seed, args.budget, args.out, extra, args.choose)
    _say(f"done in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
