"""A registered version's files: copied once into the registry folder, verified, then read-only.

A version's folder is ``<registry>/<version>``. It is written under a temporary name, every file
is checked against the manifest's sha256s, the files are made read-only and the folder is renamed
into place, so a reader never sees a half-copied version. Registering the same build again finds
the folder intact and keeps it; a different build under a taken version is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from classifiers.base import ModelNotFoundError
from classifiers.manifest import MANIFEST, mismatched_files, read_manifest, sha256_file
from pipeline.core.model_registry import ModelIdentity
from pipeline.errors import ModerationError

__all__ = ["RegistryFilesError", "copy_into_registry", "verified_identity"]

Step = Callable[[str], None]
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RegistryFilesError(ModerationError):
    """A model folder is missing, damaged, or does not match what the registry recorded."""

    retriable = False


def verified_identity(model_dir: Path, expected_sha256: str | None = None) -> ModelIdentity:
    """The folder's version and manifest sha256, after checking every file's sha256.

    Raises :class:`RegistryFilesError` when a file is missing or changed, or when the manifest
    is not the one the registry recorded (``expected_sha256``).
    """
    try:
        manifest = read_manifest(model_dir)
    except ModelNotFoundError as exc:
        raise RegistryFilesError(str(exc)) from None
    digest = sha256_file(model_dir / MANIFEST)
    if expected_sha256 is not None and digest != expected_sha256:
        raise RegistryFilesError(
            f"{model_dir / MANIFEST} has sha256 {digest[:12]}…, the registry recorded "
            f"{expected_sha256[:12]}…; the folder was changed after registration: restore it "
            "or register the build under a new version"
        )
    bad = mismatched_files(model_dir, manifest)
    if bad:
        raise RegistryFilesError(
            f"{model_dir} does not match its manifest ({', '.join(sorted(bad))} missing or "
            "changed); rebuild it (`modstream model build --force`) or restore the files"
        )
    version = str(manifest["version"])
    if not _VERSION.match(version):
        raise RegistryFilesError(
            f"manifest version {version!r} is not a usable registry name (letters, digits, "
            "'.', '_' and '-', at most 128 characters)"
        )
    return ModelIdentity(version, digest)


def copy_into_registry(
    source: Path, registry: Path, *, step: Step | None = None
) -> tuple[Path, ModelIdentity]:
    """Copy a built model folder to ``<registry>/<version>`` (verified, read-only).

    Returns the version's folder and identity. Idempotent for the same build; raises
    :class:`RegistryFilesError` for a damaged source or a different build under the same version.
    """
    say: Step = step or (lambda _msg: None)
    say(f"verifying {source}")
    identity = verified_identity(source)
    target = registry / identity.version
    if target.exists():
        say(f"{target} exists; verifying it")
        existing = sha256_file(target / MANIFEST) if (target / MANIFEST).is_file() else None
        if existing is not None and existing != identity.manifest_sha256:
            raise RegistryFilesError(
                f"model version {identity.version!r} is already registered with another build "
                f"({target}); give the new build its own version"
            )
        verified_identity(target, identity.manifest_sha256)
        return target, identity
    manifest = read_manifest(source)
    try:
        _copy(source, target, [*sorted(manifest["files"]), MANIFEST], identity, say)
    except OSError as exc:
        raise RegistryFilesError(
            f"cannot write {target}: {exc}; register where MODSTREAM_MODEL_REGISTRY_DIR is "
            "writable (stages mount it read-only)"
        ) from None
    say(f"registered files of {identity.version} at {target}")
    return target, identity


def _copy(source: Path, target: Path, names: list[str], identity: ModelIdentity, say: Step) -> None:
    """Copy ``names`` under a temporary name, verify, make read-only, rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{identity.version}.{uuid.uuid4().hex[:8]}.partial"
    work.mkdir()
    try:
        for index, name in enumerate(names, start=1):
            size = (source / name).stat().st_size
            say(f"copying {name} ({size / 1e6:.1f} MB, {index}/{len(names)})")
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, work / name)
        say("verifying the copy")
        verified_identity(work, identity.manifest_sha256)
        for path in work.rglob("*"):
            path.chmod(0o555 if path.is_dir() else 0o444)
        work.chmod(0o555)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
