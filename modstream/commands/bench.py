"""``modstream bench ...``: performance measurements. Other modules attach subcommands to
:data:`bench` (``from modstream.commands.bench import bench``; ``@bench.command()``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from modstream.commands.context import CommandContext, pass_context
from modstream.commands.model import stderr_logs
from pipeline.modelstore import ensure_model


@click.group()
def bench() -> None:
    """Benchmarks; each subcommand's last output line is one JSON object."""


def _cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@bench.command("classifier")
@click.option(
    "--texts",
    "n_texts",
    type=click.IntRange(16),
    default=2000,
    show_default=True,
    help="Posts drawn from the datasets.",
)
@click.option(
    "--batch-sizes", default="1,8,32,128", show_default=True, help="Comma-separated batch sizes."
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="Threads for ORT and torch (default: all CPUs).",
)
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--skip-torch", is_flag=True, help="Skip the torch peer (it is the slowest part).")
@pass_context
def classifier_cmd(
    ctx: CommandContext,
    n_texts: int,
    batch_sizes: str,
    threads: int | None,
    data_dir: Path | None,
    skip_torch: bool,
) -> None:
    """Posts/s and latency per batch size: int8 and fp32 ONNX on CPU, torch peer, GPU if any.

    Headline numbers are at the largest batch size.
    """
    from classifiers.base import ClassifierError
    from classifiers.bench import measure, sample_texts, torch_peer
    from classifiers.data import DEFAULT_DATA_DIR
    from classifiers.onnx import CPU, CUDA, TENSORRT, load_classifier

    try:
        sizes = sorted({int(s) for s in batch_sizes.split(",") if s.strip()})
    except ValueError:
        raise click.UsageError(f"--batch-sizes must be integers, got {batch_sizes!r}") from None
    if not sizes or sizes[0] < 1:
        raise click.UsageError("--batch-sizes must be positive")
    count = threads or _cpu_threads()
    model_dir = ctx.settings.models_path
    stderr_logs()
    ensure_model(model_dir)
    texts = sample_texts(data_dir or DEFAULT_DATA_DIR, n_texts)
    results: dict[str, list[dict[str, float]]] = {}
    engines: list[tuple[str, str, list[str]]] = [("int8", "int8", [CPU]), ("fp32", "fp32", [CPU])]
    engines += [("gpu_fp16_tensorrt", "fp16", [TENSORRT]), ("gpu_fp16_cuda", "fp16", [CUDA])]
    notes: dict[str, str] = {}
    mean_tokens = 0.0
    for name, variant, providers in engines:
        try:
            # Scoring is all this process does, so ONNX Runtime's threads may spin (as torch's
            # OpenMP threads do); the stages turn spinning off (MODSTREAM_ONNX_SPIN_WAIT).
            clf = load_classifier(
                model_dir,
                variant=variant,  # type: ignore[arg-type]
                providers=providers,
                threads=count,
                spin_wait=True,
            )
        except ClassifierError as exc:
            notes[name] = f"skipped: {exc}"
            click.echo(f"{name}: skipped ({exc})", err=True)
            continue
        if not mean_tokens:
            lengths = clf.token_lengths(texts)
            mean_tokens = sum(lengths) / len(lengths)
        results[name] = [measure(clf.predict_array, texts, size) for size in sizes]
        clf.close()
        _print_rows(name, results[name])
    if not skip_torch:
        results["torch"] = [measure(torch_peer(model_dir, count), texts, size) for size in sizes]
        _print_rows("torch", results["torch"])

    def headline(name: str) -> float | None:
        rows = results.get(name)
        return rows[-1]["posts_per_s"] if rows else None

    int8, peer = headline("int8"), headline("torch")
    gate_us = _language_gate_us(texts)
    click.echo(f"{'language gate':>20}  {gate_us:>8.1f} us per post (one thread)", err=True)
    summary: dict[str, Any] = {
        "texts": len(texts),
        "mean_tokens": round(mean_tokens, 1),
        "threads": count,
        "headline_batch_size": sizes[-1],
        "int8_posts_per_s": headline("int8"),
        "fp32_posts_per_s": headline("fp32"),
        "torch_posts_per_s": headline("torch"),
        "ratio_vs_torch": round(int8 / peer, 2) if int8 and peer else None,
        "gpu_fp16_posts_per_s": headline("gpu_fp16_tensorrt") or headline("gpu_fp16_cuda"),
        # The language gate runs before the classifier on every post: its cost per post, and
        # that cost as a share of the int8 classifier's time per post at the headline batch.
        "language_gate_us_per_post": round(gate_us, 1),
        "language_gate_share_of_int8": round(gate_us * int8 / 1e6, 3) if int8 else None,
        "per_batch_size": results,
        "notes": notes,
    }
    click.echo(json.dumps(summary, separators=(",", ":")))


def _language_gate_us(texts: list[str]) -> float:
    """Microseconds per post of language identification (the gate's detector), one thread."""
    from classifiers.language import detect_languages

    detect_languages(texts[:10])  # load the model outside the clock
    started = time.perf_counter()
    detect_languages(texts)
    return (time.perf_counter() - started) / max(len(texts), 1) * 1e6


def _print_rows(name: str, rows: list[dict[str, float]]) -> None:
    for row in rows:
        click.echo(
            f"{name:>20}  batch {int(row['batch_size']):>4}  {row['posts_per_s']:>8.1f} posts/s"
            f"  p50 {row['latency_ms_p50']:>8.2f} ms  p95 {row['latency_ms_p95']:>8.2f} ms"
        )


COMMANDS: list[click.Command] = [bench]
