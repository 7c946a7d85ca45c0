"""The model registry with a running real-time stage (``modstream run realtime``), real Kafka and
Postgres, and the CLI as an operator runs it: a promotion switches the stage mid-stream, a
rollback switches it back, `model list` shows the history and a replay starts with the active
version. The faust engine gets a leaner run of the same switch (one in-process promotion).

The two versions are REAL models: copies of the built model folder (its int8 variant and
tokenizer) whose manifest names another version, with the manifest's file list and the registry's
manifest sha256 recomputed. They carry the same trained weights, which is fine here: the test is
about which version decides each batch, not about what it decides.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from classifiers.manifest import MANIFEST, TOKENIZER_FILES, read_manifest, sha256_file
from modstream.roots.replay import run as replay_run
from pipeline.config import Settings
from pipeline.core.model_registry import promotion
from pipeline.registry.files import copy_into_registry
from pipeline.store.model_registry import PostgresModelRegistry
from pipeline.store.pg import PostgresStore
from replay.request import ReplayRequest
from schemas import DecisionEvent, decode
from tests.fixtures.databases import own_database
from tests.fixtures.services import (
    MODSTREAM,
    StageProcess,
    fetch_rows,
    isolated_settings,
    jsonl,
    post_document,
    produce_raw,
    read_topic,
    run_modstream,
    settings_env,
    wait_for_current_verdicts,
)

pytestmark = pytest.mark.integration

__all__ = ["own_database"]  # the fixture, used by name below

TEXTS = ["have a nice day", "you are an idiot and I will kill you", "win $$$ now click here"]


def model_version_copy(built: Path, target: Path, version: str) -> Path:
    """The built model's int8 variant and tokenizer in ``target``, under another version."""
    manifest = read_manifest(built)
    int8 = manifest["variants"]["int8"]
    names = [int8, *TOKENIZER_FILES]
    target.mkdir(parents=True)
    for name in names:
        shutil.copyfile(built / name, target / name)
    manifest["version"] = version
    manifest["variants"] = {"int8": int8}
    manifest["files"] = {name: sha256_file(target / name) for name in names}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return target


async def register(settings: Settings, folder: Path, *, promote: bool) -> str:
    """Register (and promote) a version in-process, as `model register` / `promote` would."""
    target, identity = copy_into_registry(folder, settings.model_registry_dir or Path())
    store = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=1)
    try:
        registry = PostgresModelRegistry(store.pool)
        await registry.register(identity, path=str(target), evaluation={"auc": 0.9}, by="test")
    finally:
        await store.close()
    if promote:
        await promote_in_process(settings, identity.version)
    return identity.version


async def promote_in_process(settings: Settings, version: str) -> None:
    store = await PostgresStore.open(settings.postgres_dsn.get_secret_value(), max_size=1)
    try:
        await PostgresModelRegistry(store.pool).append(
            lambda registered, history: promotion(
                version, registered=registered, history=history, by="test"
            )
        )
    finally:
        await store.close()


async def stream(settings: Settings, run: str, stop: asyncio.Event) -> list[str]:
    """Produce a post every 50 ms until ``stop``; returns their ids in order."""
    ids: list[str] = []
    while not stop.is_set():
        post_id = f"reg-{run}-{len(ids):05d}"
        document = post_document(post_id, TEXTS[len(ids) % len(TEXTS)])
        await produce_raw(settings, list(jsonl([document])), key_prefix=post_id)
        ids.append(post_id)
        await asyncio.sleep(0.05)
    return ids


async def wait_for_version(settings: Settings, run: str, version: str, *, after: int) -> None:
    """Until a verdict of this run decided by ``version`` exists past post number ``after``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = await fetch_rows(
            settings,
            "SELECT post_id FROM verdicts WHERE post_id LIKE $1 AND model_version = $2",
            f"reg-{run}-%",
            version,
        )
        if any(int(r["post_id"].rsplit("-", 1)[1]) > after for r in rows):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no post decided by {version} within 60 s")


async def version_runs(settings: Settings, post_ids: list[str], versions: set[str]) -> list[str]:
    """Check that every post has exactly one verdict and each non-borderline one exactly one
    decision event, and that no batch mixes versions; returns the versions in decision order,
    each run of equal versions once."""
    rows = await fetch_rows(
        settings,
        "SELECT post_id, verdict, model_version, decided_at FROM verdicts "
        "WHERE post_id = ANY($1::text[]) ORDER BY decided_at, post_id",
        post_ids,
    )
    assert sorted(r["post_id"] for r in rows) == sorted(post_ids)
    events = [
        decode(DecisionEvent, r.value) for r in await read_topic(settings, settings.topic_decisions)
    ]
    published = Counter(e.post_id for e in events)
    final = {r["post_id"] for r in rows if r["verdict"] != "borderline"}
    assert set(published) == final and set(published.values()) == {1}
    assert {e.model_version for e in events} <= versions

    # No batch mixes versions: the decisions of one batch share their decided_at.
    by_batch: dict[Any, set[str]] = defaultdict(set)
    for row in rows:
        by_batch[row["decided_at"]].add(row["model_version"])
    assert all(len(batch) == 1 for batch in by_batch.values())

    runs = [rows[0]["model_version"]]
    for row in rows[1:]:
        if row["model_version"] != runs[-1]:
            runs.append(row["model_version"])
    return runs


async def cli(settings: Settings, *args: str) -> str:
    return await asyncio.to_thread(run_modstream, settings, *args)


def log_events(logs: str, event: str) -> list[dict[str, Any]]:
    """The stage's JSON log lines for ``event``."""
    found = []
    for line in logs.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("event") == event:
            found.append(document)
    return found


async def metrics_text(settings: Settings) -> str:
    url = f"http://127.0.0.1:{settings.realtime_metrics_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def test_promotion_and_rollback_switch_a_running_stage_mid_stream(
    own_database: Settings, model_dir: Path, tmp_path: Path
) -> None:
    settings = await isolated_settings(
        own_database,
        "registry",
        model_registry_dir=tmp_path / "registry",
        model_poll_seconds=0.5,
        model_variant="int8",
        realtime_calibrate_batch=False,
    )
    base = read_manifest(model_dir)["version"]
    first = await register(
        settings, model_version_copy(model_dir, tmp_path / "a", f"{base}-a"), promote=True
    )
    second = f"{base}-b"
    second_dir = model_version_copy(model_dir, tmp_path / "b", second)
    evaluation = tmp_path / "eval.txt"
    evaluation.write_text('evaluating...\n{"lodo_min_roc_auc": 0.86, "borderline_share": 0.02}\n')

    stage = StageProcess(settings, "realtime", tmp_path)
    stage.start()
    run = uuid.uuid4().hex[:8]
    stop = asyncio.Event()
    try:
        # The operator registers the second version (the CLI) while the stage starts.
        registered, _ = await asyncio.gather(
            cli(settings, "model", "register", str(second_dir), "--eval", str(evaluation)),
            stage.wait_ready(),
        )
        assert f"{second} registered" in registered
        producer = asyncio.create_task(stream(settings, run, stop))
        await wait_for_version(settings, run, first, after=0)
        await cli(settings, "model", "promote", second, "--by", "ops", "--reason", "better auc")
        await wait_for_version(settings, run, second, after=0)
        switched_at = len(
            await fetch_rows(settings, "SELECT 1 FROM posts WHERE post_id LIKE $1", f"reg-{run}-%")
        )
        await cli(settings, "model", "rollback", "--by", "ops", "--reason", "worse in prod")
        await wait_for_version(settings, run, first, after=switched_at)
        await asyncio.sleep(0.5)  # a few more posts under the first version
        stop.set()
        post_ids = await producer
        decided = await wait_for_current_verdicts(settings, post_ids, within=60, stage=stage)
        assert decided == len(post_ids), stage.logs()[-3000:]
        metrics = await metrics_text(settings)
    finally:
        stop.set()
        assert stage.terminate() == 0, stage.logs()[-3000:]

    assert await version_runs(settings, post_ids, {first, second}) == [first, second, first]

    switches = [(e["from"], e["to"]) for e in log_events(stage.logs(), "model.switched")]
    assert switches == [(first, second), (second, first)]
    assert 'modstream_model_switches_total{result="ok"} 2.0' in metrics
    assert f'version="{first}"' in metrics.split("modstream_model_active_info", 1)[1]

    # Nothing left to roll back to: a clear error and exit 1 (the history below is unchanged).
    failed, text = await asyncio.gather(
        asyncio.to_thread(
            subprocess.run,
            [MODSTREAM, "model", "rollback"],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            check=False,
        ),
        cli(settings, "model", "list"),
    )
    assert failed.returncode == 1
    assert "nothing to roll back to" in failed.stderr and "modstream model promote" in failed.stderr
    assert f"* {first}" in text and f"  {second}" in text

    # A replay uses the version active when it starts (not the settings' folder, `base`), and
    # `model list` shows both versions, the active one marked, and the whole history.
    report, listing = await asyncio.gather(
        replay_run(settings, ReplayRequest(id_prefix=f"reg-{run}-", dry_run=True, progress=False)),
        cli(settings, "model", "list", "--json"),
    )
    assert report["model_version"] == first
    listed = json.loads(listing)
    assert listed["active"] == first
    assert [(v["version"], v["active"]) for v in listed["versions"]] == [
        (first, True),
        (second, False),
    ]
    assert listed["versions"][0]["evaluation"] == {"auc": 0.9}
    assert listed["versions"][1]["evaluation"] == {
        "lodo_min_roc_auc": 0.86,
        "borderline_share": 0.02,
    }
    assert listed["versions"][1]["path"] == str(tmp_path / "registry" / second)
    assert [(h["action"], h["version"], h["replaced"], h["by"]) for h in listed["history"]] == [
        ("promote", first, None, "test"),
        ("promote", second, first, "ops"),
        ("rollback", first, second, "ops"),
    ]


async def test_the_faust_engine_switches_between_batches_too(
    own_database: Settings, model_dir: Path, tmp_path: Path
) -> None:
    """The same hook in the faust agent: a promotion mid-stream, nothing lost or repeated."""
    settings = await isolated_settings(
        own_database,
        "registry-faust",
        model_registry_dir=tmp_path / "registry",
        model_poll_seconds=0.5,
        model_variant="int8",
        realtime_calibrate_batch=False,
        realtime_engine="faust",
    )
    base = read_manifest(model_dir)["version"]
    first, second = [
        await register(
            settings, model_version_copy(model_dir, tmp_path / n, f"{base}-{n}"), promote=n == "a"
        )
        for n in ("a", "b")
    ]
    stage = StageProcess(settings, "realtime", tmp_path)
    stage.start()
    run = uuid.uuid4().hex[:8]
    stop = asyncio.Event()
    try:
        await stage.wait_ready()
        producer = asyncio.create_task(stream(settings, run, stop))
        await wait_for_version(settings, run, first, after=0)
        await promote_in_process(settings, second)
        await wait_for_version(settings, run, second, after=0)
        await asyncio.sleep(0.5)
        stop.set()
        post_ids = await producer
        decided = await wait_for_current_verdicts(settings, post_ids, within=60, stage=stage)
        assert decided == len(post_ids), stage.logs()[-3000:]
    finally:
        stop.set()
        assert stage.terminate() == 0, stage.logs()[-3000:]
    assert await version_runs(settings, post_ids, {first, second}) == [first, second]
