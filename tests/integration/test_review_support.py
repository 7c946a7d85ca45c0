"""Shared fixtures and helpers of the review tests (no tests here).

Each test module gets a review app on free ports with its own decisions topic, a frontier
simulator, and uniquely named users; items use a unique post-id prefix, and every claim-next in
these tests is narrowed to that prefix, so tests never touch other tests' queue items.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest_asyncio
from pydantic import SecretStr

from pipeline.config import Settings
from pipeline.frontier.sim import SimConfig, SimulatorServer
from pipeline.review.core import Role
from pipeline.review.service import RunningReview, running_review
from pipeline.store.pg import PostgresStore
from schemas import (
    DecisionEvent,
    PostEvent,
    ReviewItem,
    ReviewReason,
    Stage,
    Verdict,
    decision_id,
    review_item_id,
)
from tests.fixtures.services import isolated_settings

PASSWORD = "correct horse battery staple"
SIM = SimConfig(latency_p50_s=0.02, latency_p99_s=0.05, stream_chunk_delay_s=0.01, seed=7)


@dataclass
class ReviewEnv:
    settings: Settings
    app: RunningReview
    store: PostgresStore
    base_url: str
    reviewer: str
    lead: str

    async def user(self, role: Role = Role.REVIEWER) -> str:
        name = f"rv-{uuid.uuid4().hex[:10]}"
        await self.app.context.accounts.create_user(name, PASSWORD, role, actor="test")
        return name


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def review_env(stack_settings: Settings) -> AsyncIterator[ReviewEnv]:
    async with SimulatorServer(SIM) as sim:
        settings = await isolated_settings(
            stack_settings,
            "review",
            review_port=0,
            review_metrics_port=0,
            anthropic_base_url=sim.url,
            anthropic_api_key=SecretStr("test-key"),
            anthropic_analysis_max_tokens=1024,
        )
        store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
        try:
            async with running_review(settings, host="127.0.0.1", port=0) as app:
                env = ReviewEnv(settings, app, store, f"http://127.0.0.1:{app.port}", "", "")
                env.reviewer = await env.user(Role.REVIEWER)
                env.lead = await env.user(Role.LEAD)
                yield env
        finally:
            await store.close()


def new_prefix() -> str:
    return f"rvtest-{uuid.uuid4().hex[:10]}-"


async def seed_items(
    store: PostgresStore,
    prefix: str,
    count: int,
    *,
    severity: float = 0.5,
    reason: ReviewReason = ReviewReason.FALLBACK,
    age: timedelta = timedelta(0),
    text: str = "you are all idiots, buy cheap pills now",
    frontier_verdict: Verdict | None = Verdict.REMOVE,
) -> list[ReviewItem]:
    """Posts, an earlier (frontier) decision each, and their review items."""
    now = datetime.now(UTC)
    posts, decisions, items = [], [], []
    for i in range(count):
        post_id = f"{prefix}{i:04d}"
        post = PostEvent(
            post_id=post_id, author_id="author-rv", text=f"{text} #{i}", ingested_at=now - age
        )
        posts.append((post, None, None, None))
        source = None
        if frontier_verdict is not None:
            source = decision_id(post_id, Stage.FRONTIER, "claude-sim", "policy-test")
            decisions.append(
                DecisionEvent(
                    decision_id=source,
                    post_id=post_id,
                    verdict=frontier_verdict,
                    scores={"toxicity": severity, "spam": 0.1},
                    categories=["toxicity"],
                    stage=Stage.FRONTIER,
                    model_version="claude-sim",
                    policy_version="policy-test",
                    ingested_at=now - age,
                    decided_at=now - age,
                    rationale="Insults the reader and advertises pills.",
                )
            )
        items.append(
            ReviewItem(
                item_id=review_item_id(post_id, reason, source or "seed"),
                post_id=post_id,
                reason=reason,
                detail="seeded by a test",
                severity=severity,
                source_decision_id=source,
                scores={"toxicity": severity, "spam": 0.1},
                enqueued_at=now - age,
            )
        )
    await store.write_batch(posts=posts, decisions=decisions, review_items=items)
    return items


_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class ReviewClient:
    """A browser-like HTTP client: cookie jar, login form, CSRF header on API calls."""

    def __init__(self, base_url: str) -> None:
        self.http = aiohttp.ClientSession(
            base_url=base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def __aenter__(self) -> ReviewClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.http.close()

    async def login(self, username: str, password: str = PASSWORD) -> int:
        async with self.http.get("/login") as response:
            token = _CSRF_FIELD.search(await response.text())
        assert token is not None
        async with self.http.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token[1]},
            allow_redirects=False,
        ) as response:
            status = response.status
        if status == 302:
            async with self.http.get("/") as response:
                meta = _CSRF_META.search(await response.text())
            assert meta is not None
            self.csrf = meta[1]
        return status

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        csrf: bool = True,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        async with self.http.request(
            method, path, json=body, headers=headers, params=params, allow_redirects=False
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


async def logged_in(env: ReviewEnv, username: str) -> ReviewClient:
    client = ReviewClient(env.base_url)
    status = await client.login(username)
    if status != 302:
        await client.http.close()
        raise AssertionError(f"login of {username} answered {status}")
    return client
