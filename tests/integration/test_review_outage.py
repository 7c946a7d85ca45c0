"""A Postgres outage: the review app answers 503 with Retry-After, reports not ready, and recovers
by itself. Uses a Postgres of its own (never the shared test stack's), killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
import pytest
import pytest_asyncio
from pydantic import SecretStr

from devtools.stack.postgres import PostgresServer
from modstream.roots.review import running_review
from pipeline.config import Settings
from pipeline.review.rules import Role
from pipeline.store.migrate import migrate
from tests.fixtures.review import PASSWORD, ReviewClient
from tests.fixtures.services import free_port, isolated_settings

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def own_postgres(stack_settings: Settings) -> AsyncIterator[tuple[Settings, PostgresServer]]:
    home = Path(tempfile.mkdtemp(prefix="modstream-outage-"))
    os.chmod(home, 0o755)  # the server runs as its own system user when tests run as root
    port = free_port()
    settings = await isolated_settings(
        stack_settings,
        "outage",
        state_dir=home,
        postgres_dsn=SecretStr(f"postgresql://modstream:modstream@127.0.0.1:{port}/modstream"),
        review_port=0,
        review_metrics_port=0,
    )
    server = PostgresServer(settings)
    try:
        await asyncio.to_thread(server.start)
        await server.ensure_database()
        await migrate(settings.postgres_dsn.get_secret_value())
        yield settings, server
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(home, ignore_errors=True)


def kill9(server: PostgresServer) -> None:
    """SIGKILL the postmaster and every backend, as a crash of the database host would."""
    pid = server.pid()
    assert pid is not None
    postmaster = psutil.Process(pid)
    victims = [postmaster, *postmaster.children(recursive=True)]
    for proc in victims:
        os.kill(proc.pid, signal.SIGKILL)
    psutil.wait_procs(victims, timeout=30)


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_postgres_outage_gives_503_and_the_app_recovers_alone(
    own_postgres: tuple[Settings, PostgresServer],
) -> None:
    settings, server = own_postgres
    async with running_review(settings, host="127.0.0.1", port=0) as app:
        name = "outage-reviewer"
        await app.context.accounts.create_user(name, PASSWORD, Role.REVIEWER, actor="test")
        base = f"http://127.0.0.1:{app.port}"
        ready_url = f"http://127.0.0.1:{app.ops_port}/readyz"
        async with ReviewClient(base) as client, aiohttp.ClientSession() as probe:
            assert await client.login(name) == 302

            async def ready(expected: int) -> bool:
                async with probe.get(ready_url) as response:
                    return response.status == expected

            await _until(lambda: ready(200), "ready before the outage")
            assert (await client.call("GET", "/api/me"))[0] == 200

            await asyncio.to_thread(kill9, server)
            seen: set[int] = set()
            for method, path in (("GET", "/api/me"), ("GET", "/api/queue"), ("GET", "/")) * 3:
                async with client.http.request(method, path, allow_redirects=False) as response:
                    seen.add(response.status)
                    assert response.status == 503, (method, path)
                    assert int(response.headers["Retry-After"]) >= 1
                    assert response.headers["Cache-Control"] == "no-store"
            async with (
                aiohttp.ClientSession(base_url=base) as anonymous,
                anonymous.get("/login") as response,
            ):
                assert response.status == 200, "the login form needs no database"
            await _until(lambda: ready(503), "not ready during the outage")
            async with probe.get(ready_url) as response:
                assert (await response.json())["status"] == "not_ready"

            await asyncio.to_thread(server.start)

            async def serving() -> bool:
                status, _ = await client.call("GET", "/api/me")
                assert status in {200, 503}, status
                return status == 200

            await _until(serving, "/api/me to answer again")
            await _until(lambda: ready(200), "ready after the outage")
            status, body = await client.call("GET", "/api/me")
            assert status == 200 and body["username"] == name, "sessions survived the crash"
    assert seen == {503}
