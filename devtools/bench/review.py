"""``modstream bench review``: a backlog of pending items, reviewers claiming and deciding.

The review app runs as ``modstream review serve`` in a child process, as in production; the
reviewers (and one lead polling the statistics) are HTTP clients in this process, each signed in
through the login form with its CSRF token. Each reviewer loops: claim-next, wait ``think_s``,
decide; every fifth round it also loads the queue page (HTML) and the next page of the JSON queue
view (keyset cursor). Afterwards the audit log is checked for items two reviewers held at once.
Percentiles cover the steady state after ``warmup_s``; the ``*_with_warmup`` keys include it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from devtools.bench import review_data as bench_data
from devtools.processes import free_port
from pipeline.config import Settings
from pipeline.errors import ServiceUnavailableError
from pipeline.kafka.admin import ensure_topics
from pipeline.review.rules import Role

PAGE_EVERY = 5
READY_TIMEOUT_S = 60.0
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Timings:
    """Latencies in milliseconds per kind of request, and what was claimed by whom.

    Requests started before ``steady_from`` (a ``perf_counter`` value) are the warm-up: each
    reviewer's first requests open Postgres connections and prepare statements in the app, a
    one-off a long-running app does not repeat. They are kept apart (``warmup_ms``) and reported
    next to the steady-state figures, never mixed into them.
    """

    ms: dict[str, list[float]] = field(default_factory=dict)
    warmup_ms: dict[str, list[float]] = field(default_factory=dict)
    claimed: list[str] = field(default_factory=list)
    empty_claims: int = 0
    steady_from: float = 0.0

    def add(self, kind: str, started: float) -> None:
        into = self.ms if started >= self.steady_from else self.warmup_ms
        into.setdefault(kind, []).append((time.perf_counter() - started) * 1000)

    def count(self, kind: str) -> int:
        return len(self.ms.get(kind, [])) + len(self.warmup_ms.get(kind, []))

    def pct(self, kind: str, q: float, *, with_warmup: bool = False) -> float | None:
        values = self.ms.get(kind, []) + (self.warmup_ms.get(kind, []) if with_warmup else [])
        if not values:
            return None
        values.sort()
        return round(values[min(len(values) - 1, int(q * len(values)))], 2)


class Reviewer:
    """A signed-in browser-like HTTP client (cookie jar, CSRF header on POST)."""

    def __init__(self, base_url: str) -> None:
        self.http = aiohttp.ClientSession(
            base_url=base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def sign_in(self, username: str, password: str) -> None:
        async with self.http.get("/login") as response:
            form = _CSRF_FIELD.search(await response.text())
        fields = {"username": username, "password": password, "csrf_token": form[1] if form else ""}
        async with self.http.post("/login", data=fields, allow_redirects=False) as response:
            if response.status != 302:
                raise ServiceUnavailableError(f"bench login answered {response.status}")
        async with self.http.get("/") as response:
            meta = _CSRF_META.search(await response.text())
        self.csrf = meta[1] if meta else ""

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"X-CSRF-Token": self.csrf}
        async with self.http.post(path, json=body or {}, headers=headers) as response:
            if response.status != 200:
                raise ServiceUnavailableError(f"POST {path}: {response.status}")
            return await response.json()

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        async with self.http.get(path, params=params) as response:
            if response.status != 200:
                raise ServiceUnavailableError(f"GET {path}: {response.status}")
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown"


@contextlib.asynccontextmanager
async def _review_app(settings: Settings, log_path: Path) -> AsyncIterator[str]:
    """``modstream review serve`` on a free port; its base URL once it answers."""
    port = free_port()
    env = {**os.environ, **settings.as_env(), "PYTHONUNBUFFERED": "1"}
    command = [str(Path(sys.executable).with_name("modstream")), "review", "serve"]
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *command, "--host", "127.0.0.1", "--port", str(port),
            env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base_url}/login") as response:
                        if response.status == 200:
                            break
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise ServiceUnavailableError(f"the review app did not start; see {log_path}")
                await asyncio.sleep(0.2)
        yield base_url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


async def _review(who: Reviewer, stop_at: float, think_s: float, t: Timings) -> None:
    rounds = 0
    while time.monotonic() < stop_at:
        rounds += 1
        started = time.perf_counter()
        body = await who.post("/api/claim-next")
        t.add("claim", started)
        if body["claimed"] is None:
            t.empty_claims += 1
            continue
        item_id = body["claimed"]["item_id"]
        t.claimed.append(item_id)
        if rounds % PAGE_EVERY == 0:
            await _browse(who, t)
        if think_s > 0:
            await asyncio.sleep(think_s)
        started = time.perf_counter()
        await who.post(
            f"/api/items/{item_id}/decide", {"verdict": random.choice(["allow", "remove"])}
        )
        t.add("decide", started)


async def _browse(who: Reviewer, t: Timings) -> None:
    """The queue page (HTML), then the first two pages of the JSON queue view."""
    started = time.perf_counter()
    await who.get("/")
    t.add("queue_page", started)
    started = time.perf_counter()
    first = await who.get("/api/queue")
    t.add("queue_page", started)
    if first["next"] is not None:
        started = time.perf_counter()
        await who.get("/api/queue", {"after": first["next"]})
        t.add("queue_page", started)


async def _lead(who: Reviewer, stop_at: float, t: Timings) -> None:
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        await who.get("/api/stats")
        t.add("stats", started)
        await asyncio.sleep(1.0)


async def _progress(t: Timings, started: float, report: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(5.0)
        report(
            f"{time.monotonic() - started:5.0f} s: {t.count('claim')} claims, "
            f"claim p99 {t.pct('claim', 0.99)} ms, decide p99 {t.pct('decide', 0.99)} ms"
        )


async def run_review_bench(
    settings: Settings,
    *,
    pending: int,
    reviewers: int,
    seconds: float,
    think_s: float,
    keep: bool,
    report: Callable[[str], None],
    warmup_s: float = 5.0,
) -> dict[str, Any]:
    """Seed, serve, review for ``seconds``, verify, clean up; the figures."""
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-review-{run}-"
    settings = settings.model_copy(
        update={
            "topic_decisions": f"moderation.decisions.bench-review-{run}",
            "review_metrics_port": free_port(),
        }
    )
    await ensure_topics(settings)
    password = bench_data.new_password()
    names = [f"bench-{run}-rv{i}" for i in range(reviewers)]
    lead = f"bench-{run}-lead"
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=1, max_size=2
    )
    try:
        seed_started = time.monotonic()
        await bench_data.seed(pool, prefix, pending, report)
        seed_s = time.monotonic() - seed_started
        await bench_data.create_users(pool, names, Role.REVIEWER, password)
        await bench_data.create_users(pool, [lead], Role.LEAD, password)
        queue_open = int(await pool.fetchval("SELECT sum(open_items) FROM review_queue_counts"))
        log_path = Path(settings.state_dir) / f"bench-review-{run}.log"
        t = Timings()
        async with _review_app(settings, log_path) as base_url:
            clients = [Reviewer(base_url) for _ in range(reviewers + 1)]
            try:
                for client, name in zip(clients, [*names, lead], strict=True):
                    await client.sign_in(name, password)
                report(f"{reviewers} reviewers signed in; reviewing for {seconds:.0f} s")
                started = time.monotonic()
                t.steady_from = time.perf_counter() + warmup_s
                stop_at = started + seconds
                progress = asyncio.create_task(_progress(t, started, report))
                try:
                    await asyncio.gather(
                        *(_review(c, stop_at, think_s, t) for c in clients[:-1]),
                        _lead(clients[-1], stop_at, t),
                    )
                finally:
                    progress.cancel()
                elapsed = time.monotonic() - started
            finally:
                for client in clients:
                    await client.http.close()
        doubles = await bench_data.double_claims(pool, t.claimed, settings.review_lease_seconds)
        report("checked the audit log for overlapping claims")
    finally:
        if not keep:
            report("removing the seeded items and bench accounts ...")
            await bench_data.cleanup(pool, prefix, [*names, lead])
        await pool.close()
    return {
        "pending": queue_open,
        "seeded": pending,
        "seed_s": round(seed_s, 1),
        "reviewers": reviewers,
        "seconds": round(elapsed, 1),
        "think_ms": round(think_s * 1000),
        "warmup_s": warmup_s,
        "claims": t.count("claim"),
        "decisions": t.count("decide"),
        "claims_per_s": round(t.count("claim") / elapsed, 1),
        "claim_p50_ms": t.pct("claim", 0.5),
        "claim_p99_ms": t.pct("claim", 0.99),
        "decide_p50_ms": t.pct("decide", 0.5),
        "decide_p99_ms": t.pct("decide", 0.99),
        "queue_page_p50_ms": t.pct("queue_page", 0.5),
        "queue_page_p99_ms": t.pct("queue_page", 0.99),
        "stats_p99_ms": t.pct("stats", 0.99),
        "claim_p99_ms_with_warmup": t.pct("claim", 0.99, with_warmup=True),
        "queue_page_p99_ms_with_warmup": t.pct("queue_page", 0.99, with_warmup=True),
        "double_claims": doubles,
        "items_claimed": len(set(t.claimed)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu": _cpu_model(),
    }
