"""Test-wide defaults. Runs before any test module, so before anything loads settings.

The tests' stack gets its own state dir and ports, so it never disturbs a developer's
``modstream up`` on the default ports. Variables already set in the environment win.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

TEST_ENV = {
    "MODSTREAM_STATE_DIR": str(REPO_ROOT / ".modstream" / "test"),
    "MODSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19192",
    "MODSTREAM_KAFKA_CONTROLLER_PORT": "19193",
    "MODSTREAM_POSTGRES_DSN": "postgresql://modstream:modstream@127.0.0.1:15532/modstream",
    # Models are built once and shared with `make demo` (the build is deterministic).
    "MODSTREAM_MODEL_DIR": str(REPO_ROOT / ".modstream" / "models"),
    "HF_HUB_OFFLINE": "1",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)

# --import-mode=importlib does not put the repository on sys.path; `python -m pytest` does.
# Make `tests.fixtures.*` importable either way.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.model"]


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    """In CI (``CI=true``), stop the test stack so no process outlives the run.

    Developers keep it warm between runs; ``modstream down`` (with the test variables) stops it.
    """
    if os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        return
    from devtools.stack import down
    from pipeline.config import load_settings

    down(load_settings())
