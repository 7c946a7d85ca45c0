"""Running stages follow the registry: load a promoted version off the event loop, swap between
micro-batches.

:class:`ModelSwitch` polls the registry every ``poll_seconds``. When the active version is not
the one loaded, it loads the version's classifier on a worker thread, checking every file
against the manifest and the manifest against the sha256 the registry recorded, and holds it
ready. The stage calls :meth:`ModelSwitch.apply` at the top of its loop, under its batch lock:
no batch is being scored then, and a batch captures its classifier once, so every batch is
scored by one version and the switch loses or repeats no message (offsets are untouched).

A failed load keeps the current model, is logged and counted, and is tried again at the next
poll. An unreachable registry keeps the current model too; the stage is never paused for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter, Info

from classifiers.base import Classifier
from classifiers.manifest import MANIFEST, sha256_file
from pipeline.core.model_registry import ModelIdentity, RegisteredModel, wants_switch
from pipeline.errors import ModerationError
from pipeline.log import get_logger
from pipeline.registry.config import RegistryConfig
from pipeline.registry.files import verified_identity

__all__ = ["ActiveModelSource", "LoadedModel", "Loader", "ModelSwitch", "starting_model"]

log = get_logger(__name__)

SWITCHES = Counter(
    "modstream_model_switches_total",
    "Switches of a running stage to the registry's active model version, by result "
    "(ok, failed: the current model was kept and the load is retried at the next poll).",
    ["result"],
)
ACTIVE = Info(
    "modstream_model_active",
    "The model version this process scores with, and where it came from (registry, settings).",
)

_REGISTRY_TIMEOUT_S = 2.0

Loader = Callable[[Path], Classifier]
"""Loads a model folder's classifier (blocking: it is called on a worker thread)."""


class ActiveModelSource(Protocol):
    """Where the active version is read (:class:`pipeline.store.model_registry`)."""

    async def active(self) -> RegisteredModel | None: ...


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A loaded classifier, what it is, and where it came from (``registry`` or ``settings``)."""

    classifier: Classifier
    identity: ModelIdentity
    source: str


def _load_registered(model: RegisteredModel, load: Loader, files: Path) -> LoadedModel:
    """Verify the version's files against the registry row, then load it (blocking).

    The files are read from this process's registry folder (``<files>/<version>``), so the
    shared volume may be mounted at another path than where the version was registered; the
    recorded path is the fallback.
    """
    path = files / model.version
    if not path.is_dir():
        path = Path(model.path)
    identity = verified_identity(path, model.manifest_sha256)
    classifier = load(path)
    if classifier.model_version != identity.version:
        classifier.close()
        raise ModerationError(
            f"{path} loaded as {classifier.model_version!r}, registered as {identity.version!r}"
        )
    return LoadedModel(classifier, identity, "registry")


def _load_default(folder: Path, load: Loader) -> LoadedModel:
    classifier = load(folder)
    identity = ModelIdentity(classifier.model_version, sha256_file(folder / MANIFEST))
    return LoadedModel(classifier, identity, "settings")


def _show(loaded: LoadedModel) -> None:
    ACTIVE.info(
        {
            "version": loaded.identity.version,
            "manifest_sha256": loaded.identity.manifest_sha256,
            "source": loaded.source,
        }
    )


async def _active_or_none(source: ActiveModelSource, *, stage: str) -> RegisteredModel | None:
    try:
        async with asyncio.timeout(_REGISTRY_TIMEOUT_S):
            return await source.active()
    except (ModerationError, TimeoutError) as exc:
        log.warning("model.registry_unreachable", stage=stage, error=str(exc))
        return None


async def starting_model(
    config: RegistryConfig, source: ActiveModelSource, load: Loader, *, stage: str
) -> LoadedModel:
    """The model a stage starts with: the registry's active version, else the settings' folder.

    An unreachable registry or an active version that fails to load falls back to the
    settings' folder (logged); a running stage's :class:`ModelSwitch` catches up later. A
    missing settings folder raises :class:`classifiers.base.ModelNotFoundError`.
    """
    active = await _active_or_none(source, stage=stage)
    if active is not None:
        try:
            loaded = await asyncio.to_thread(_load_registered, active, load, config.files)
        except Exception as exc:  # noqa: BLE001 - any load failure falls back, as documented
            SWITCHES.labels("failed").inc()
            log.error("model.load_failed", stage=stage, version=active.version, error=str(exc))
        else:
            _show(loaded)
            return loaded
    loaded = await asyncio.to_thread(_load_default, config.default_model, load)
    _show(loaded)
    return loaded


class ModelSwitch:
    """Holds the stage's current model and, once loaded, the promoted one it switches to."""

    def __init__(
        self,
        current: LoadedModel,
        *,
        source: ActiveModelSource,
        load: Loader,
        config: RegistryConfig,
        stage: str,
    ) -> None:
        self._current = current
        self._ready: LoadedModel | None = None
        self._source = source
        self._load = load
        self._files = config.files
        self._poll_seconds = config.poll_seconds
        self._stage = stage

    @classmethod
    async def start(
        cls, config: RegistryConfig, source: ActiveModelSource, load: Loader, *, stage: str
    ) -> ModelSwitch:
        """A switch over the model a stage starts with (:func:`starting_model`)."""
        current = await starting_model(config, source, load, stage=stage)
        return cls(current, source=source, load=load, config=config, stage=stage)

    @property
    def classifier(self) -> Classifier:
        """The classifier in use (the stage's, until :meth:`apply` hands it a new one)."""
        return self._current.classifier

    @property
    def identity(self) -> ModelIdentity:
        return self._current.identity

    @property
    def switch_ready(self) -> bool:
        """True when a promoted model is loaded and the next :meth:`apply` switches to it."""
        return self._ready is not None

    async def check(self) -> bool:
        """One poll: load the active version if it is not the one in use; True when one is ready.

        Never raises for an unreachable registry or a failed load (both keep the current model).
        """
        if self._ready is not None:
            return True
        active = await _active_or_none(self._source, stage=self._stage)
        if active is None or not wants_switch(self._current.identity, active):
            return False
        log.info("model.loading", stage=self._stage, version=active.version)
        try:
            self._ready = await asyncio.to_thread(_load_registered, active, self._load, self._files)
        except Exception as exc:  # noqa: BLE001 - a failed load must never end the stage
            SWITCHES.labels("failed").inc()
            log.error(
                "model.switch_failed",
                stage=self._stage,
                version=active.version,
                kept=self._current.identity.version,
                error=str(exc),
            )
            return False
        return True

    def apply(self) -> Classifier:
        """The classifier for the next batch: the ready one if any (the old one is closed).

        Call it between batches, under the stage's batch lock, and score the batch with what it
        returns.
        """
        ready, self._ready = self._ready, None
        if ready is None:
            return self._current.classifier
        previous, self._current = self._current, ready
        previous.classifier.close()
        SWITCHES.labels("ok").inc()
        _show(ready)
        log.info(
            "model.switched",
            stage=self._stage,
            **{"from": previous.identity.version, "to": ready.identity.version},
        )
        return ready.classifier

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_seconds)
            if not stop.is_set():
                await self.check()

    @contextlib.asynccontextmanager
    async def watching(self, stop: asyncio.Event) -> AsyncIterator[ModelSwitch]:
        """Poll in the background while the block runs."""
        task = asyncio.create_task(self.run(stop), name=f"{self._stage}-model-switch")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._ready is not None:
                self._ready.classifier.close()
                self._ready = None
