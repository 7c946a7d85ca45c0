"""The model switch and the registry folder, on small model folders (a manifest and one file).

The registry here is an in-memory :class:`~pipeline.registry.switch.ActiveModelSource`; the
classifier a fixed-score fake named after the folder's manifest. The real registry, the real
model and a running stage are tested in ``tests/integration/test_model_registry.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import REGISTRY

from classifiers.base import Classifier
from classifiers.manifest import MANIFEST, read_manifest, sha256_file
from pipeline.core.model_registry import RegisteredModel
from pipeline.errors import DependencyUnavailableError
from pipeline.registry.config import RegistryConfig
from pipeline.registry.files import RegistryFilesError, copy_into_registry, verified_identity
from pipeline.registry.switch import ModelSwitch, starting_model
from tests.fixtures.fakes import FixedScoreClassifier, keyword_rule


def model_folder(path: Path, version: str, payload: bytes = b"weights") -> Path:
    path.mkdir(parents=True)
    (path / "model.int8.onnx").write_bytes(payload)
    manifest = {
        "version": version,
        "labels": ["toxic"],
        "max_tokens": 16,
        "files": {"model.int8.onnx": sha256_file(path / "model.int8.onnx")},
        "variants": {"int8": "model.int8.onnx"},
    }
    (path / MANIFEST).write_text(json.dumps(manifest))
    return path


def load(path: Path) -> Classifier:
    fake = FixedScoreClassifier(keyword_rule, model_version=read_manifest(path)["version"])
    return cast("Classifier", fake)


class Registry:
    """The active version, or an outage."""

    def __init__(self) -> None:
        self.row: RegisteredModel | None = None
        self.down = False

    async def active(self) -> RegisteredModel | None:
        if self.down:
            raise DependencyUnavailableError("postgres", "ConnectionRefusedError")
        return self.row

    def promote(self, folder: Path) -> None:
        identity = verified_identity(folder)
        self.row = RegisteredModel(
            identity.version, identity.manifest_sha256, str(folder), None, datetime.now(UTC), "t"
        )


def failed() -> float:
    return REGISTRY.get_sample_value("modstream_model_switches_total", {"result": "failed"}) or 0.0


def config(tmp_path: Path) -> RegistryConfig:
    return RegistryConfig(
        files=tmp_path / "registry",
        default_model=model_folder(tmp_path / "built", "built-1"),
        poll_seconds=0.01,
    )


def test_copy_into_registry_is_verified_read_only_and_idempotent(tmp_path: Path) -> None:
    source = model_folder(tmp_path / "src", "v1")
    target, identity = copy_into_registry(source, tmp_path / "registry")
    assert target == tmp_path / "registry" / "v1"
    assert identity.manifest_sha256 == sha256_file(source / MANIFEST)
    assert not (target / "model.int8.onnx").stat().st_mode & 0o222
    assert copy_into_registry(source, tmp_path / "registry") == (target, identity)
    other = model_folder(tmp_path / "other", "v1", b"other weights")
    with pytest.raises(RegistryFilesError, match="already registered with another build"):
        copy_into_registry(other, tmp_path / "registry")


def test_a_damaged_folder_is_refused(tmp_path: Path) -> None:
    source = model_folder(tmp_path / "src", "v1")
    (source / "model.int8.onnx").write_bytes(b"tampered")
    with pytest.raises(RegistryFilesError, match=r"model\.int8\.onnx missing or changed"):
        copy_into_registry(source, tmp_path / "registry")
    assert not (tmp_path / "registry" / "v1").exists()


def test_an_unwritable_registry_folder_says_where_to_register(tmp_path: Path) -> None:
    source = model_folder(tmp_path / "src", "v1")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(RegistryFilesError, match="register where MODSTREAM_MODEL_REGISTRY_DIR"):
        copy_into_registry(source, tmp_path / "a-file" / "registry")


async def test_a_stage_starts_with_the_active_version_else_the_settings_folder(
    tmp_path: Path,
) -> None:
    registry = Registry()
    cfg = config(tmp_path)
    assert (await starting_model(cfg, registry, load, stage="t")).identity.version == "built-1"
    registry.down = True
    assert (await starting_model(cfg, registry, load, stage="t")).source == "settings"
    registry.down = False
    registry.promote(model_folder(tmp_path / "v2", "v2"))
    started = await starting_model(cfg, registry, load, stage="t")
    assert (started.identity.version, started.source) == ("v2", "registry")


async def test_the_switch_hands_over_the_promoted_model_only_when_applied(tmp_path: Path) -> None:
    registry = Registry()
    switch = await ModelSwitch.start(config(tmp_path), registry, load, stage="t")
    assert not await switch.check()
    registry.promote(model_folder(tmp_path / "v2", "v2"))
    assert await switch.check()
    assert switch.classifier.model_version == "built-1"  # the stage has not applied it yet
    assert switch.apply().model_version == "v2"
    assert switch.apply().model_version == "v2"
    assert not await switch.check()


async def test_a_failed_load_or_an_outage_keeps_the_current_model(tmp_path: Path) -> None:
    registry = Registry()
    switch = await ModelSwitch.start(config(tmp_path), registry, load, stage="t")
    broken = model_folder(tmp_path / "v2", "v2")
    registry.promote(broken)
    (broken / "model.int8.onnx").write_bytes(b"changed after registration")
    before = failed()
    assert not await switch.check()
    assert failed() == before + 1
    assert switch.apply().model_version == "built-1"
    registry.down = True
    assert not await switch.check()
    assert switch.apply().model_version == "built-1"


async def test_a_stage_reads_a_version_from_its_own_registry_folder(tmp_path: Path) -> None:
    """The shared volume may be mounted elsewhere than where the version was registered."""
    registry = Registry()
    cfg = config(tmp_path)
    _, identity = copy_into_registry(model_folder(tmp_path / "src", "v3"), cfg.files)
    registry.row = RegisteredModel(
        "v3", identity.manifest_sha256, "/elsewhere/v3", None, datetime.now(UTC), "t"
    )
    started = await starting_model(cfg, registry, load, stage="t")
    assert (started.identity.version, started.source) == ("v3", "registry")
