"""Make sure the built model exists before a command, a benchmark or the demo needs it."""

from __future__ import annotations

from pathlib import Path

import click

from classifiers.export import BuildResult, Step, build


def ensure_model(
    models_path: Path, *, force: bool = False, echo: Step | None = None
) -> BuildResult:
    """Build the ONNX model folder from the committed artifacts if missing, stale or forced.

    Idempotent: an up-to-date folder (manifest and sha256s match) is verified and kept.
    Raises :class:`classifiers.base.ClassifierError` when the build fails.
    """
    say: Step = echo or (lambda msg: click.echo(f"model build: {msg}", err=True))
    return build(models_path, force=force, step=say)
