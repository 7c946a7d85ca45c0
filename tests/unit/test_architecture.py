"""The layers of the code base, checked by walking every module's imports.

``schemas`` ← ``classifiers`` ← ``pipeline`` ← ``replay`` ← ``devtools`` ← ``modstream``

* ``modstream`` is the application layer: the CLI and each process's composition root
  (:data:`COMPOSITION_ROOTS`). Nothing else imports it.
* ``devtools`` is developer tooling (simulator, local stack, demo, benchmarks, fault
  injection); the runtime never imports it, so a runtime image can leave it out.
* ``pipeline.core`` is pure: no I/O library, nothing of pipeline's outside the core.
* No module imports by string (``importlib.import_module``, ``__import__``), so every edge is
  visible to this test.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("schemas", "classifiers", "pipeline", "replay", "devtools", "modstream")
"""Each layer may import itself and the layers before it, never the ones after it."""
COMPOSITION_ROOTS = {
    "modstream.cli",
    "modstream.roots.realtime",
    "modstream.roots.frontier",
    "modstream.roots.review",
    "modstream.roots.replay",
}
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


def dynamic_imports(path: Path) -> list[str]:
    """Calls that import by string: ``importlib.import_module(...)``, ``__import__(...)``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"}:
                found.append(f"line {node.lineno}: {name}")
    return found


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("layer", LAYERS)
def test_nothing_imports_upwards(layer: str) -> None:
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    bad = {
        module: sorted(n for n in imported(path) if top(n) in above)
        for module, path in modules(layer)
    }
    assert {m: b for m, b in bad.items() if b} == {}


@pytest.mark.parametrize("layer", LAYERS)
def test_no_import_by_string(layer: str) -> None:
    bad = {module: dynamic_imports(path) for module, path in modules(layer)}
    assert {m: b for m, b in bad.items() if b} == {}


def test_every_composition_root_lives_in_the_application_layer() -> None:
    present = {module for module, _ in modules("modstream")}
    assert present >= COMPOSITION_ROOTS
    assert all(top(root) == "modstream" for root in COMPOSITION_ROOTS)


def test_the_console_script_is_the_application_layer() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'modstream = "modstream.cli:main"' in pyproject


def test_the_pure_core_does_no_io() -> None:
    core = [(m, p) for m, p in modules("pipeline") if m.startswith("pipeline.core")]
    bad = {
        module: sorted(
            n
            for n in imported(path)
            if top(n) in ADAPTER_LIBRARIES
            or (
                n.startswith("pipeline.")
                and not n.startswith("pipeline.core")
                and n not in {"pipeline.errors", "pipeline.config"}
            )
        )
        for module, path in core
    }
    assert {m: b for m, b in bad.items() if b} == {}


def test_anthropic_and_onnxruntime_each_have_one_importer() -> None:
    importers: dict[str, set[str]] = {"anthropic": set(), "onnxruntime": set()}
    for layer in LAYERS:
        for module, path in modules(layer):
            for name in imported(path):
                if top(name) in importers:
                    importers[top(name)].add(module)
    assert importers["anthropic"] == {"pipeline.frontier.client"}
    assert importers["onnxruntime"] <= {"classifiers.onnx", "classifiers.export"}


def test_no_product_module_is_over_400_lines() -> None:
    long = {
        module: n
        for layer in LAYERS
        for module, path in modules(layer)
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


_SESSION_STATE = re.compile(
    r"pg_(try_)?advisory_(un)?lock(_shared)?\s*\(|\bLISTEN\s+\w|\bset_config\s*\("
    r"|\bSET\s+(SESSION|ROLE|search_path|TIME ZONE)\b|\bWITH HOLD\b"
)


def _module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def test_the_review_app_keeps_no_session_state_on_its_pooled_connections() -> None:
    # Its pool skips asyncpg's reset query on release (PostgresStore.connect(stateless=True)):
    # no module the review root reaches may take a session-level lock, LISTEN, or SET.
    reached: dict[str, Path] = {}
    todo = ["modstream.roots.review"]
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in reached or path is None:
            continue
        reached[name] = path
        todo.extend(n for n in imported(path) if top(n) in LAYERS)
    assert "pipeline.review.claims" in reached and "pipeline.store.pg" in reached
    found = [
        f"{name} line {node.lineno}"
        for name, path in reached.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _SESSION_STATE.search(node.value)
    ]
    assert found == [], "session state on a stateless pool; use a connection of its own"
