"""``modstream replay`` as a process with the real model: kill -9 mid-run, resume, compare.

Two copies of the same posts (prefixes A and B): A is killed with SIGKILL after a few chunks are
checkpointed and then resumed by running the same command again; B runs uninterrupted. Both must
end in the same state: one batch verdict per post, the same scores and verdicts, the same current
verdicts, every chunk checkpointed once, and no finished chunk scored twice.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from devtools.bench.replay import bench_texts
from pipeline.config import Settings
from tests.fixtures.model import model_dir  # noqa: F401 - the built-model fixture
from tests.fixtures.services import MODSTREAM, REPO_ROOT, isolated_settings, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POSTS = 3000
CHUNK = 50
POLICY = {
    "version": "replay-kill-p1",
    "categories": {
        "toxic": {"remove_at": 0.8, "review_at": 0.5},
        "hate": {"remove_at": 0.8, "review_at": 0.5},
        "spam": {"remove_at": 0.9, "review_at": 0.6},
    },
}


@pytest_asyncio.fixture(loop_scope="session")
async def env(
    stack_settings: Settings,
    tmp_path: Path,
    model_dir: Path,  # noqa: F811
) -> dict[str, str]:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    settings = await isolated_settings(
        stack_settings,
        "replay-kill",
        replay_chunk_size=CHUNK,
        policy_path=policy,
        model_dir=model_dir,
        model_variant="int8",
        model_providers="CPUExecutionProvider",
    )
    return settings_env(settings)


async def seed(conn: asyncpg.Connection, prefix: str, texts: list[str]) -> None:
    await conn.copy_records_to_table(
        "posts",
        records=[(f"{prefix}{i:06d}", "a", t, _ingested()) for i, t in enumerate(texts)],
        columns=["post_id", "author_id", "text", "ingested_at"],
    )


def _ingested() -> Any:
    from datetime import UTC, datetime

    return datetime(2024, 1, 1, tzinfo=UTC)


async def replay(env: dict[str, str], *args: str, limit_s: float = 300) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        MODSTREAM,
        "replay",
        "--no-progress",
        "--json",
        *args,
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
    return proc.returncode or 0, out.decode(errors="replace")


def last_json(output: str) -> dict[str, Any]:
    line = [x for x in output.splitlines() if x.startswith("{")][-1]
    report: dict[str, Any] = json.loads(line)
    return report


async def state(conn: asyncpg.Connection, prefix: str) -> dict[str, Any]:
    n = len(prefix)
    verdicts = await conn.fetch(
        """SELECT substr(post_id, $2) AS k, verdict, scores::text, categories, stage,
                  model_version, policy_version, reason
           FROM verdicts WHERE post_id LIKE $1 ORDER BY 1, stage""",
        prefix + "%",
        n + 1,
    )
    current = await conn.fetch(
        """SELECT substr(post_id, $2) AS k, verdict, stage, model_version, policy_version
           FROM current_verdicts WHERE post_id LIKE $1 ORDER BY 1""",
        prefix + "%",
        n + 1,
    )
    return {"verdicts": [tuple(r) for r in verdicts], "current": [tuple(r) for r in current]}


async def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(
    env: dict[str, str], stack_settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = f"rk{tag}-a-", f"rk{tag}-b-"
    texts = bench_texts(POSTS)
    texts[7], texts[8] = "", "x" * 300_000  # bad rows ride along
    conn = await asyncpg.connect(stack_settings.postgres_dsn.get_secret_value())
    try:
        await seed(conn, a, texts)
        await seed(conn, b, texts)
        count_sql = """SELECT count(*) FROM replay_checkpoints c JOIN replay_runs r USING (run_id)
                       WHERE r.params->'selection'->>'id_prefix' = $1"""

        proc = await asyncio.create_subprocess_exec(
            MODSTREAM,
            "replay",
            "--no-progress",
            "--json",
            "--id-prefix",
            a,
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 240
        while await conn.fetchval(count_sql, a) < 4:
            assert proc.returncode is None, "replay ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoints within 240 s"
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)
        killed_at = await conn.fetchval(count_sql, a)
        assert killed_at < POSTS // CHUNK, "the run finished before the kill"
        run = await conn.fetchrow(
            "SELECT run_id, status FROM replay_runs WHERE params->'selection'->>'id_prefix' = $1", a
        )
        assert run["status"] == "running"

        code, output = await replay(env, "--id-prefix", a)  # the same command resumes
        assert code == 0, output[-3000:]
        resumed = last_json(output)
        assert resumed["run_id"] == run["run_id"] and resumed["resumes"] == 1
        assert resumed["posts"] == POSTS
        assert resumed["posts_this_process"] == POSTS - killed_at * CHUNK  # nothing redone

        code, output = await replay(env, "--id-prefix", b)
        assert code == 0, output[-3000:]
        straight = last_json(output)
        assert straight["resumes"] == 0 and straight["posts"] == POSTS

        chunks = await conn.fetch(
            "SELECT chunk_no, posts FROM replay_checkpoints WHERE run_id = $1 ORDER BY chunk_no",
            run["run_id"],
        )
        assert [c["chunk_no"] for c in chunks] == list(range(POSTS // CHUNK))
        assert sum(c["posts"] for c in chunks) == POSTS
        assert resumed["transitions"] == straight["transitions"]
        assert resumed["truncated_text"] == straight["truncated_text"] == 1

        got_a, got_b = await state(conn, a), await state(conn, b)
        assert len(got_a["current"]) + resumed["borderline"] == POSTS
        assert got_a == got_b
        per_post = await conn.fetchval(
            """SELECT max(n) FROM (SELECT count(*) AS n FROM verdicts WHERE post_id LIKE $1
               GROUP BY post_id) t""",
            a + "%",
        )
        assert per_post == 1
    finally:
        await conn.close()


async def test_exit_codes(env: dict[str, str]) -> None:
    code, output = await replay(env, "--shard", "4/2")
    assert code == 2 and "--shard" in output
    code, output = await replay(env, "--since", "yesterday")
    assert code == 2
    code, output = await replay(env, "--resume", "no-such-run")
    assert code == 1 and "no replay run" in output
    # a configuration error is not an outage: it ends the run at once, saying what to fix
    dsn = env["MODSTREAM_POSTGRES_DSN"].replace("modstream:modstream@", "modstream:wrong@")
    bad = {**env, "MODSTREAM_POSTGRES_DSN": dsn}
    code, output = await replay(bad, "--id-prefix", "none-", limit_s=60)
    assert code == 1 and "MODSTREAM_POSTGRES_DSN" in output and "refused" in output
