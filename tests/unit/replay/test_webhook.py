"""Webhook delivery: retries transient failures, gives up quietly (loopback server only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from replay.webhook import backoff_s, post_report


async def serve(statuses: list[int]) -> tuple[web.AppRunner, str, list[Any]]:
    received: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook", received


async def test_retries_then_delivers() -> None:
    runner, url, received = await serve([500, 503])
    try:
        ok = await post_report(url, {"run_id": "r"}, timeout_s=2, retries=3, base_backoff_s=0.01)
    finally:
        await runner.cleanup()
    assert ok and len(received) == 3 and received[-1] == {"run_id": "r"}


async def test_client_error_is_not_retried() -> None:
    runner, url, received = await serve([400])
    try:
        ok = await post_report(url, {"a": 1}, timeout_s=2, retries=3, base_backoff_s=0.01)
    finally:
        await runner.cleanup()
    assert not ok and len(received) == 1


async def test_unreachable_never_raises() -> None:
    ok = await post_report(
        "http://127.0.0.1:9/nothing", {"a": 1}, timeout_s=0.5, retries=1, base_backoff_s=0.01
    )
    assert not ok


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(i) for i in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_s(30) == 10.0
