"""The dependency direction of DESIGN.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "classifiers", "pipeline", "replay")
ADAPTER_LIBRARIES = {
    "aiokafka",
    "asyncpg",
    "anthropic",
    "onnxruntime",
    "aiohttp",
    "faust",
    "torch",
    "transformers",
}


def modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield ".".join(path.relative_to(ROOT).with_suffix("").parts), path


def imported(path: Path) -> set[str]:
    """Every absolute module name a file imports (at any depth, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("schemas", {"schemas"}),
        ("classifiers", {"schemas", "classifiers"}),
        ("pipeline", {"schemas", "classifiers", "pipeline"}),
        ("replay", {"schemas", "classifiers", "pipeline", "replay"}),
    ],
)
def test_nothing_imports_upwards(package: str, allowed: set[str]) -> None:
    ours = set(PACKAGES)
    bad = {
        module: sorted(top(n) for n in imported(path) if top(n) in ours - allowed)
        for module, path in modules(package)
    }
    assert {m: b for m, b in bad.items() if b} == {}


def test_the_pure_core_does_no_io() -> None:
    bad = {
        module: sorted(n for n in imported(path) if top(n) in ADAPTER_LIBRARIES)
        for module, path in modules("pipeline")
        if module.startswith("pipeline.core")
    }
    bad.update(
        {
            module: sorted(
                n
                for n in imported(path)
                if n.startswith("pipeline.")
                and not (
                    n.startswith("pipeline.core") or n in {"pipeline.errors", "pipeline.config"}
                )
            )
            for module, path in modules("pipeline")
            if module.startswith("pipeline.core")
        }
    )
    assert {m: b for m, b in bad.items() if b} == {}


def test_nothing_imports_a_composition_root() -> None:
    roots = {"pipeline.cli"}
    bad = {
        module: sorted(n for n in imported(path) if n in roots)
        for package in PACKAGES
        for module, path in modules(package)
        if module not in roots
    }
    assert {m: b for m, b in bad.items() if b} == {}


def test_anthropic_and_onnxruntime_each_have_one_importer() -> None:
    importers: dict[str, set[str]] = {"anthropic": set(), "onnxruntime": set()}
    for package in PACKAGES:
        for module, path in modules(package):
            for name in imported(path):
                if top(name) in importers:
                    importers[top(name)].add(module)
    assert importers["anthropic"] == {"pipeline.frontier.client"}
    assert importers["onnxruntime"] <= {"classifiers.onnx", "classifiers.export"}
