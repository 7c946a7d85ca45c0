"""Open the shadow candidate for the real-time stage: its model, policy, store and producer.

A candidate that cannot be loaded (missing folder, bad manifest, bad policy) never stops the
live stage: the error is logged, ``modstream_shadow_active`` stays 0 and the stage runs without
a shadow.
"""

from __future__ import annotations

from pathlib import Path

from classifiers.base import Classifier, ClassifierError
from classifiers.onnx import load_classifier
from pipeline.config import Settings
from pipeline.core.policy import Policy, PolicyError, load_policy
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from pipeline.shadow import metrics
from pipeline.shadow.config import ShadowConfig
from pipeline.shadow.scorer import ShadowScorer
from pipeline.store.pg import PostgresStore
from pipeline.store.shadow import PostgresShadowStore

log = get_logger(__name__)


def load_candidate(
    settings: Settings,
    model_dir: Path,
    policy_path: Path | None,
    *,
    live_policy: Policy,
    threads: int | None = None,
) -> tuple[Classifier, Policy]:
    """A candidate's classifier (variant and providers as the live model's; ``threads``, else
    the live model's) and its policy (``None``: the live policy). Raises ClassifierError,
    PolicyError or OSError."""
    providers = [p.strip() for p in settings.model_providers.split(",") if p.strip()] or None
    policy = load_policy(policy_path) if policy_path is not None else live_policy
    classifier = load_classifier(
        model_dir,
        variant=settings.model_variant,
        providers=providers,
        threads=threads if threads is not None else settings.onnx_threads,
        spin_wait=settings.onnx_spin_wait,
    )
    return classifier, policy


async def open_shadow(settings: Settings, *, live_policy: Policy) -> ShadowScorer | None:
    """The shadow scorer the settings ask for, or ``None`` (none asked for, or unloadable)."""
    metrics.ACTIVE.set(0)
    config = ShadowConfig.from_settings(settings)
    if config is None:
        return None
    try:
        classifier, policy = load_candidate(
            settings,
            config.model_dir,
            config.policy_path,
            live_policy=live_policy,
            threads=config.threads,
        )
    except (ClassifierError, PolicyError, OSError) as exc:
        log.error(
            "shadow.load_failed",
            model_dir=str(config.model_dir),
            error=str(exc),
            fix="check MODSTREAM_SHADOW_MODEL (a built model folder: `modstream model build`) "
            "and MODSTREAM_SHADOW_POLICY; the live stage runs without a shadow meanwhile",
        )
        return None
    pool = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=2)
    publisher = KafkaEventPublisher(settings, client_id=f"{settings.kafka_client_id}-shadow")
    metrics.ACTIVE.set(1)
    log.info(
        "shadow.ready",
        model_version=classifier.model_version,
        policy_version=policy.version,
        topic=config.topic,
    )
    return ShadowScorer(
        classifier=classifier,
        policy=policy,
        live_policy=live_policy,
        store=PostgresShadowStore(pool.pool),
        publisher=publisher,
        topic=config.topic,
        max_pending_batches=config.max_pending_batches,
    )
