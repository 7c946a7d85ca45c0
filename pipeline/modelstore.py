"""The built model: make sure it exists, and load it (with the policy) as settings say."""

from __future__ import annotations

from pathlib import Path

import click

from classifiers.base import Classifier
from classifiers.export import BuildResult, Step, build
from classifiers.language import load_language_model
from classifiers.onnx import load_classifier
from pipeline.config import Settings
from pipeline.core.policy import Policy, load_policy


def ensure_model(
    models_path: Path, *, force: bool = False, echo: Step | None = None
) -> BuildResult:
    """Build the ONNX model folder from the committed artifacts if missing, stale or forced.

    Idempotent: an up-to-date folder (manifest and sha256s match) is verified and kept.
    Raises :class:`classifiers.base.ClassifierError` when the build fails.
    """
    say: Step = echo or (lambda msg: click.echo(f"model build: {msg}", err=True))
    return build(models_path, force=force, step=say)


def load_model(settings: Settings, model_dir: Path | None = None) -> Classifier:
    """The classifier in ``model_dir`` (default: the settings' models folder), with the variant,
    execution providers and threads from settings (a registered version loads the same way)."""
    providers = [p.strip() for p in settings.model_providers.split(",") if p.strip()] or None
    return load_classifier(
        model_dir or settings.models_path,
        variant=settings.model_variant,
        providers=providers,
        threads=settings.onnx_threads,
        spin_wait=settings.onnx_spin_wait,
    )


def load_model_and_policy(
    settings: Settings, model_dir: Path | None = None
) -> tuple[Classifier, Policy]:
    """The classifier (variant and providers from settings) and the policy in force.

    Every consumer of the model (real-time engines, replay, benchmarks) loads it here, so they
    all run the variant and execution providers an operator configured.
    """
    return load_model(settings, model_dir), load_policy_in_force(settings)


def load_policy_in_force(settings: Settings) -> Policy:
    """The policy from settings, with the language gate's model loaded when it has a gate."""
    policy = load_policy(settings.policy_path)
    if policy.languages is not None:
        load_language_model()  # the gate's model, before the first batch rather than in it
    return policy
