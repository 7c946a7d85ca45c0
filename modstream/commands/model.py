"""``modstream model build|train|eval`` and ``modstream classify``: the local classifier."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import structlog

from modstream.commands.context import CommandContext, pass_context
from pipeline.core.policy import Policy, default_policy_path, evaluate, load_policy
from pipeline.modelstore import ensure_model

CHUNK = 1024


def stderr_logs() -> None:
    """Keep stdout for data: send structlog and stdlib logs to stderr."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def model() -> None:
    """Train, build and evaluate the local moderation classifier."""


@model.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if the manifest and sha256s match.")
@pass_context
def build_cmd(ctx: CommandContext, force: bool) -> None:
    """Export ONNX fp32/optimized/int8/fp16 variants + manifest into the models folder."""
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("building model", spinner="dots") as status:

        def step(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        result = ensure_model(ctx.settings.models_path, force=force, echo=step)
    manifest = result.manifest
    click.echo(
        f"model {manifest['version']} at {result.model_dir}"
        f" ({'built' if result.built else 'up to date'}, {result.seconds:.0f}s)"
    )
    for name, diff in manifest.get("parity", {}).items():
        click.echo(f"  {name}: {diff:.2e}")


@model.command("train")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Labeled datasets (default <repo>/../shared/data).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Artifacts folder (default classifiers/artifacts).",
)
@click.option(
    "--steps", type=click.IntRange(0), default=None, help="Fine-tuning steps of candidate (b)."
)
@click.option(
    "--write-policy/--no-write-policy",
    default=True,
    help="Write the dev-chosen thresholds to the shipped default policy.",
)
@click.option(
    "--with-labels",
    "labels_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Teacher labels from `modstream model export-labels`, merged with the datasets.",
)
@click.option(
    "--include-simulated-labels",
    is_flag=True,
    help="Also train on the API simulator's answers (a keyword rule: for plumbing tests only).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the training set's composition as JSON; train nothing."
)
def train_cmd(
    data_dir: Path | None,
    out_dir: Path | None,
    steps: int | None,
    write_policy: bool,
    labels_path: Path | None,
    include_simulated_labels: bool,
    dry_run: bool,
) -> None:
    """Train frozen-encoder and fine-tuned candidates; keep the better one (2 CPU threads)."""
    from dataclasses import replace

    from classifiers.data import DEFAULT_DATA_DIR, DataError
    from classifiers.teacher import composition, training_examples

    if dry_run:
        try:
            examples = training_examples(
                data_dir or DEFAULT_DATA_DIR,
                labels_path,
                include_simulated=include_simulated_labels,
            )
        except DataError as exc:
            raise _fail(exc) from None
        click.echo(json.dumps({"examples": len(examples), "sources": composition(examples)}))
        return
    from classifiers.train import TrainConfig, train

    cfg = TrainConfig()
    changes: dict[str, Any] = {
        "labels_path": labels_path,
        "include_simulated_labels": include_simulated_labels,
    }
    if data_dir is not None:
        changes["data_dir"] = data_dir
    if out_dir is not None:
        changes["out_dir"] = out_dir
    if steps is not None:
        changes["finetune_steps"] = steps
    cfg = replace(cfg, **changes)
    meta = train(cfg, progress=lambda msg: click.echo(msg, err=True))
    for name, result in meta["comparison"].items():
        click.echo(
            f"{name}: held-out mean PR-AUC {result['held_out_mean_pr_auc']:.4f},"
            f" dev {result['dev_mean_pr_auc']:.4f}"
        )
    click.echo(f"chosen: {meta['chosen']}")
    if write_policy:
        path = default_policy_path()
        version = (
            json.loads(path.read_text(encoding="utf-8"))["version"]
            if path.is_file()
            else "default.v2"
        )
        doc = {
            "version": version,
            "categories": {
                k: {"remove_at": v["remove_at"], "review_at": v["review_at"]}
                for k, v in meta["thresholds"].items()
            },
        }
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote thresholds to {path}")
    click.echo("next: modstream model build --force")


@model.command("eval")
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the full report as JSON here.",
)
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option(
    "--variant", type=click.Choice(["auto", "int8", "fp32", "fp16", "optimized"]), default="auto"
)
@click.option(
    "--audit/--no-audit",
    default=True,
    show_default=True,
    help="Add audit_fn_rate from an audited replay of the shipped sample (needs the local "
    "Postgres: modstream up).",
)
@pass_context
def eval_cmd(
    ctx: CommandContext, out_path: Path | None, data_dir: Path | None, variant: str, audit: bool
) -> None:
    """Per-category quality on every held-out split, beside alt-profanity-check."""
    from rich.console import Console

    from classifiers.base import ClassifierError
    from classifiers.data import DEFAULT_DATA_DIR
    from classifiers.eval import evaluate_model, render_policy_table, render_table

    ensure_model(ctx.settings.models_path)
    policy = load_policy(ctx.settings.policy_path)
    limits = {name: (t.remove_at, t.review_at) for name, t in policy.thresholds.items()}
    try:
        report = evaluate_model(
            ctx.settings.models_path,
            data_dir or DEFAULT_DATA_DIR,
            variant,  # type: ignore[arg-type]
            limits=limits,
            policy_version=policy.version,
        )
    except (ClassifierError, ValueError) as exc:
        raise _fail(exc) from exc
    console = Console(width=200)
    console.print(render_table(report))
    console.print(render_policy_table(report["policy"]))
    from classifiers.eval_keys import eval_keys, heldout_keys

    report["figures"] = eval_keys(ctx.settings.models_path, data_dir or DEFAULT_DATA_DIR)
    report["figures"].update(heldout_keys(report["policy"]))
    if audit:
        report["figures"].update(_audit_figures(ctx))
    if out_path is not None:
        out_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {out_path}")
    click.echo(json.dumps(report["figures"]))


def _audit_figures(ctx: CommandContext) -> dict[str, Any]:
    import asyncio

    from modstream.commands.model_audit import audit_eval_figures
    from pipeline.errors import ModerationError

    try:
        return asyncio.run(audit_eval_figures(ctx.settings))
    except (ModerationError, OSError) as exc:
        raise click.ClickException(
            f"audit figures need the local Postgres ({exc}): start it with `modstream up`,"
            " or pass --no-audit"
        ) from exc


def _records(stream: IO[bytes], bad: list[int]) -> Iterator[tuple[str, str]]:
    """(post_id, text) per good line; bad lines are reported on stderr and counted."""
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        reason = None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            reason = "not valid UTF-8"
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON ({exc.msg})"
        else:
            if not isinstance(doc, dict):
                reason = "not a JSON object"
            elif (
                isinstance(doc.get("post_id"), bool)
                or not isinstance(doc.get("post_id"), str | int)
                or doc.get("post_id") == ""
            ):
                reason = "missing or invalid post_id (string or integer)"
            elif not isinstance(doc.get("text"), str):
                reason = "missing or invalid text (string)"
        if reason is not None:
            bad.append(number)
            click.echo(f"line {number}: {reason}; skipped", err=True)
            continue
        yield str(doc["post_id"]), doc["text"]


def _chunks(records: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    chunk: list[tuple[str, str]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _line(post_id: str, scores: dict[str, float], policy: Policy, model_version: str) -> str:
    outcome = evaluate(policy, scores)
    return json.dumps(
        {
            "post_id": post_id,
            "scores": {k: round(v, 6) for k, v in scores.items()},
            "verdict": outcome.verdict.value,
            "categories": outcome.categories,
            "severity": round(outcome.severity, 6),
            "model_version": model_version,
            "policy_version": policy.version,
        }
    )


@click.command()
@click.option(
    "--in",
    "in_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    required=True,
    help="JSONL with post_id and text per line ('-' = stdin).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    required=True,
    help="JSONL of scores and verdicts ('-' = stdout).",
)
@click.option(
    "--variant",
    type=click.Choice(["auto", "int8", "fp32", "fp16", "optimized"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--chunk",
    type=click.IntRange(1),
    default=CHUNK,
    show_default=True,
    help="Posts scored per inference call.",
)
@pass_context
def classify(ctx: CommandContext, in_path: Path, out_path: Path, variant: str, chunk: int) -> None:
    """Score posts from a JSONL file; exit 1 if any line was malformed (those are skipped)."""
    from classifiers.base import ClassifierError
    from classifiers.onnx import load_classifier

    settings = ctx.settings
    stderr_logs()
    ensure_model(settings.models_path)
    try:
        policy = load_policy(settings.policy_path)
        classifier = load_classifier(settings.models_path, variant=variant)  # type: ignore[arg-type]
    except ClassifierError as exc:
        raise _fail(exc) from exc
    bad: list[int] = []
    done, started = 0, time.monotonic()
    source = sys.stdin.buffer if str(in_path) == "-" else in_path.open("rb")
    sink = sys.stdout if str(out_path) == "-" else out_path.open("w", encoding="utf-8")
    try:
        for batch in _chunks(_records(source, bad), chunk):
            try:
                scores = classifier.predict([text for _, text in batch])
            except ClassifierError as exc:
                raise _fail(exc) from exc
            sink.write(
                "".join(
                    _line(pid, s, policy, classifier.model_version) + "\n"
                    for (pid, _), s in zip(batch, scores, strict=True)
                )
            )
            sink.flush()
            done += len(batch)
            rate = done / max(time.monotonic() - started, 1e-9)
            click.echo(f"classified {done} posts ({rate:.0f}/s)", err=True)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        if sink is not sys.stdout:
            sink.close()
        classifier.close()
    click.echo(
        f"done: {done} posts, {len(bad)} bad lines, {time.monotonic() - started:.1f}s", err=True
    )
    if bad:
        raise click.exceptions.Exit(1)


COMMANDS: list[click.Command] = [model, classify]
