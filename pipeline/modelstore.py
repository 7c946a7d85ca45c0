"""Make sure the built model exists before a stage, a benchmark or the demo needs it."""

from __future__ import annotations

import click

from classifiers.export import build, up_to_date
from pipeline.config import Settings


def ensure_model(settings: Settings) -> None:
    """Build the ONNX model folder from the committed artifacts if it is missing or stale."""
    if up_to_date(settings.models_path):
        return
    click.echo(
        f"building the model into {settings.models_path} (one-time, a few minutes) ...", err=True
    )
    build(settings.models_path, step=lambda msg: click.echo(f"  model build: {msg}", err=True))
