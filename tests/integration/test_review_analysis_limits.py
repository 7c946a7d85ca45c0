"""Limits of streamed analysis: one stream per session, a per-user rate, a shared token budget and
a longest duration; refusals are 429 with Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from pipeline.review.gate import AnalysisGate
from pipeline.review.limits import ReviewLimits
from tests.fixtures.review import (
    ReviewClient,
    ReviewEnv,
    logged_in,
    new_prefix,
    review_env,
    seed_items,
    served,
)

pytestmark = pytest.mark.integration
__all__ = ["review_env"]


@contextlib.asynccontextmanager
async def gated(env: ReviewEnv, **limits: float) -> AsyncIterator[tuple[str, AnalysisGate]]:
    """The review app with an analysis gate of these limits: its URL and the gate."""
    gate = AnalysisGate(dataclasses.replace(ReviewLimits(analysis_max_tokens=1024), **limits))
    async with served(dataclasses.replace(env.app.context, gate=gate)) as url:
        yield url, gate


@contextlib.asynccontextmanager
async def slow_simulator(env: ReviewEnv, delay_s: float) -> AsyncIterator[None]:
    sim = f"{env.settings.anthropic_base_url}/_sim/config"
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim, json={"stream_chunk_delay_s": delay_s}),
    ):
        pass
    try:
        yield
    finally:
        async with aiohttp.ClientSession() as http:
            await http.post(sim, json={"stream_chunk_delay_s": 0.01})


async def _analyse(client: ReviewClient, item_id: str) -> tuple[int, str, list[str]]:
    """Status, Retry-After and the event names of one whole analysis."""
    async with client.http.get(f"/api/items/{item_id}/analysis") as response:
        body = (await response.read()).decode()
        names = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
        return response.status, response.headers.get("Retry-After", ""), names


async def test_one_stream_per_session(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    other = await review_env.user()
    async with (
        gated(review_env, analysis_per_session=1, analysis_burst=10) as (url, gate),
        slow_simulator(review_env, 0.3),
        await logged_in(review_env, review_env.reviewer, base_url=url) as client,
        await logged_in(review_env, other, base_url=url) as second,
    ):
        async with client.http.get(f"/api/items/{item.item_id}/analysis") as first:
            async for raw in first.content:
                if raw.startswith(b"event: delta"):
                    break
            status, retry_after, _ = await _analyse(client, item.item_id)
            assert status == 429 and int(retry_after) >= 1
            async with second.http.get(f"/api/items/{item.item_id}/analysis") as elsewhere:
                assert elsewhere.status == 200, "another session is not affected"
        deadline = time.monotonic() + 10
        while gate.active(client.csrf):
            assert time.monotonic() < deadline, "the stopped stream kept its slot"
            await asyncio.sleep(0.05)
        async with client.http.get(f"/api/items/{item.item_id}/analysis") as again:
            assert again.status == 200


async def test_a_reviewer_has_a_rate_of_analyses(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    async with (
        gated(review_env, analysis_burst=2, analysis_per_user_per_minute=1.0) as (url, _gate),
        await logged_in(review_env, review_env.reviewer, base_url=url) as client,
        await logged_in(review_env, await review_env.user(), base_url=url) as other,
    ):
        for _ in range(2):
            status, _, names = await _analyse(client, item.item_id)
            assert status == 200 and names[-1] == "done"
        status, retry_after, _ = await _analyse(client, item.item_id)
        assert status == 429 and 50 <= int(retry_after) <= 60
        assert (await _analyse(other, item.item_id))[0] == 200, "the rate is per reviewer"


async def test_reviewers_share_a_token_budget_of_their_own(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    async with gated(review_env, analysis_tokens_per_minute=3000, analysis_burst=10) as (url, _):
        statuses = []
        for _ in range(3):
            async with await logged_in(review_env, await review_env.user(), base_url=url) as c:
                statuses.append(await _analyse(c, item.item_id))
                if statuses[-1][0] == 429:
                    status, body = await c.call("GET", f"/api/items/{item.item_id}/analysis")
                    assert status == 429 and "budget" in body["error"]
    assert [s for s, _, _ in statuses] == [200, 200, 429]
    assert int(statuses[-1][1]) >= 1


async def test_a_stream_is_cut_off_at_the_longest_duration(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    timeouts = review_env.app.context.metrics.analyses.labels("timeout")
    before = timeouts._value.get()
    async with (
        gated(review_env, analysis_max_s=0.5) as (url, _gate),
        slow_simulator(review_env, 0.3),
        await logged_in(review_env, review_env.reviewer, base_url=url) as client,
        client.http.get(f"/api/items/{item.item_id}/analysis") as response,
    ):
        started = time.monotonic()
        body = (await response.read()).decode()
        elapsed = time.monotonic() - started
    last = body.strip().split("\n\n")[-1]
    assert (
        last.startswith("event: error")
        and "limit" in json.loads(last.split("data: ")[1])["message"]
    )
    assert elapsed < 5.0
    assert timeouts._value.get() == before + 1
