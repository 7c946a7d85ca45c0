"""Security and API behaviour of the review app: sessions, CSRF, roles, filters, streaming."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.review.web import create_app
from tests.fixtures.review import (
    PASSWORD,
    ReviewClient,
    ReviewEnv,
    logged_in,
    new_prefix,
    review_env,
    seed_items,
)
from tests.fixtures.services import MODSTREAM, fetch_rows, settings_env

pytestmark = pytest.mark.integration
__all__ = ["review_env"]


def _routes(env: ReviewEnv) -> list[tuple[str, str]]:
    """Every (method, path) the app serves except the login form and static files."""
    app = create_app(env.app.context)
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method == "HEAD" or path in {"", "/login"} or path.startswith("/static"):
            continue
        found.append((route.method, path.replace("{item_id}", "no-such-item")))
    return sorted(set(found))


async def test_every_route_refuses_requests_without_a_session(review_env: ReviewEnv) -> None:
    routes = _routes(review_env)
    assert len(routes) >= 14
    async with aiohttp.ClientSession(base_url=review_env.base_url) as http:
        for method, path in routes:
            async with http.request(method, path, allow_redirects=False) as response:
                if method == "GET" and not path.startswith("/api/"):
                    assert response.status == 302, (method, path)
                    assert response.headers["Location"].startswith("/login?next=")
                else:
                    assert response.status == 401, (method, path)
        async with http.get("/", cookies={"modstream_review_session": "forged"}) as response:
            assert response.history and str(response.url.path) == "/login"


async def test_a_reviewer_cannot_use_lead_actions(review_env: ReviewEnv) -> None:
    async with await logged_in(review_env, review_env.reviewer) as client:
        assert (await client.call("GET", "/lead"))[0] == 403
        assert (await client.call("GET", "/api/stats"))[0] == 403
        status, body = await client.call(
            "POST", "/api/users", {"username": "sneaky", "password": "x" * 20, "role": "lead"}
        )
        assert status == 403 and "lead" in body["error"]
    async with await logged_in(review_env, review_env.lead) as lead:
        assert (await lead.call("GET", "/lead"))[0] == 200
        assert (await lead.call("GET", "/api/stats"))[0] == 200


async def test_state_changing_requests_without_csrf_are_refused(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    posts = [path for method, path in _routes(review_env) if method == "POST"]
    async with await logged_in(review_env, review_env.lead) as client:
        for path in posts:
            real = path.replace("no-such-item", item.item_id)
            for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
                async with client.http.post(
                    real, json={"verdict": "allow", "post_id": item.post_id}, headers=headers
                ) as response:
                    assert response.status == 403, (path, headers)
            async with client.http.post(real, data={"csrf_token": "wrong"}) as response:
                assert response.status == 403, path
        # Nothing happened: the item is still pending and nobody was logged out.
        status, detail = await client.call("GET", f"/api/items/{item.item_id}")
        assert status == 200 and detail["state"] == "pending"
    async with (
        aiohttp.ClientSession(base_url=review_env.base_url) as http,
        http.post("/login", data={"username": review_env.reviewer, "password": "x"}) as response,
    ):
        assert response.status == 403, "login without the double-submit token"


_FILTER_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "' OR 1=1 --",
            "'; DROP TABLE review_items; --",
            "%",
            "_",
            "\\",
            "appeal' UNION SELECT password_hash FROM review_users --",
            "1e309",
            "NaN",
            "-0.5",
            "0x10",
        ]
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    params=st.dictionaries(
        st.sampled_from(["state", "reason", "min_severity", "post", "limit", "after"]), _FILTER_TEXT
    )
)
async def test_sql_looking_filter_input_is_harmless(
    review_env: ReviewEnv, params: dict[str, str]
) -> None:
    clean = {k: v.replace("\x00", "") for k, v in params.items()}
    async with await logged_in(review_env, review_env.reviewer) as client:
        status, body = await client.call("GET", "/api/queue", params=clean)
        assert status in {200, 400}, body
        if status == 400:
            assert "must" in body["error"]
        else:
            assert isinstance(body["items"], list)
        page_status, _ = await client.call("GET", "/", params=clean)
        assert page_status in {200, 400}
    [row] = await fetch_rows(review_env.settings, "SELECT count(*) AS n FROM review_users")
    assert row["n"] >= 2


async def test_a_post_prefix_filter_matches_wildcards_literally(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    await seed_items(review_env.store, prefix, 2)
    async with await logged_in(review_env, review_env.reviewer) as client:
        status, body = await client.call("GET", "/api/queue", params={"post": prefix})
        assert status == 200 and len(body["items"]) == 2
        status, body = await client.call("GET", "/api/queue", params={"post": "rvtest-%"})
        assert status == 200 and body["items"] == []


async def test_login_logout_and_cookie_flags(review_env: ReviewEnv) -> None:
    client = ReviewClient(review_env.base_url)
    async with client:
        assert await client.login(review_env.reviewer, "wrong password!!") == 401
        async with client.http.get("/login") as response:
            token = response.cookies["modstream_review_login_csrf"].value
        async with client.http.post(
            "/login",
            data={
                "username": review_env.reviewer,
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/steal",
            },
            allow_redirects=False,
        ) as response:
            assert response.status == 302 and response.headers["Location"] == "/"
            cookie = next(
                h for h in response.headers.getall("Set-Cookie") if "modstream_review_session" in h
            )
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with client.http.get("/") as response:
            assert "Content-Security-Policy" in response.headers
            html = await response.text()
        client.csrf = html.split('name="csrf-token" content="')[1].split('"')[0]
        assert (await client.call("GET", "/api/me"))[1]["username"] == review_env.reviewer
        async with client.http.post(
            "/logout", data={"csrf_token": client.csrf}, allow_redirects=False
        ) as response:
            assert response.status == 302
        assert (await client.call("GET", "/api/me"))[0] == 401
    actions = await fetch_rows(
        review_env.settings,
        "SELECT action FROM audit_log WHERE actor = $1 AND action LIKE 'log%' ORDER BY audit_id",
        review_env.reviewer,
    )
    assert {"login.failed", "login", "logout"} <= {r["action"] for r in actions}


async def test_leads_create_users_with_validation(review_env: ReviewEnv) -> None:
    name = f"new-{new_prefix()[7:17]}"
    async with await logged_in(review_env, review_env.lead) as lead:
        status, _ = await lead.call(
            "POST", "/api/users", {"username": name, "password": "short", "role": "reviewer"}
        )
        assert status == 400
        body = {"username": name, "password": PASSWORD, "role": "reviewer"}
        assert (await lead.call("POST", "/api/users", body))[0] == 201
        status, again = await lead.call("POST", "/api/users", body)
        assert status == 409 and "already exists" in again["error"]
    new_client = await logged_in(review_env, name)
    await new_client.__aexit__()
    [row] = await fetch_rows(
        review_env.settings,
        "SELECT actor FROM audit_log WHERE action = 'user.create' AND subject = $1",
        name,
    )
    assert row["actor"] == review_env.lead


async def test_item_page_blurs_severe_content_and_shows_history(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    [severe] = await seed_items(review_env.store, prefix + "s", 1, severity=0.95)
    [mild] = await seed_items(review_env.store, prefix + "m", 1, severity=0.2)
    async with await logged_in(review_env, review_env.reviewer) as client:
        _, html = await client.call("GET", f"/items/{severe.item_id}")
        assert 'class="post-text blurred"' in html
        assert "Insults the reader" in html, "frontier rationale"
        assert "frontier" in html and "claude-sim" in html, "verdict history"
        _, html = await client.call("GET", f"/items/{mild.item_id}")
        assert "blurred" not in html.split('id="post-text"')[0].split("<div")[-1]
        status, _ = await client.call("GET", "/items/no-such-item")
        assert status == 404


async def _sse(response: aiohttp.ClientResponse) -> list[tuple[str, dict[str, object]]]:
    events, name = [], ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


async def test_analysis_streams_tokens_as_server_sent_events(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    async with (
        await logged_in(review_env, review_env.reviewer) as client,
        client.http.get(f"/api/items/{item.item_id}/analysis") as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = await _sse(response)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[1] == "first_token" and names[-1] == "done"
    assert names.count("delta") > 3, "streamed in pieces, not one blob"
    text = "".join(str(data["text"]) for name, data in events if name == "delta")
    assert "SIMULATOR" in text and "Suggested verdict" in text
    assert float(events[1][1]["ttft_ms"]) >= 0  # type: ignore[arg-type]


async def test_analysis_stops_upstream_when_the_reviewer_stops(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    metrics = review_env.app.context.metrics
    before = metrics.analyses.labels("stopped")._value.get()
    sim = review_env.settings.anthropic_base_url
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim}/_sim/config", json={"stream_chunk_delay_s": 0.3}) as r,
    ):
        assert r.status == 200
    try:
        async with (
            await logged_in(review_env, review_env.reviewer) as client,
            client.http.get(f"/api/items/{item.item_id}/analysis") as response,
        ):
            async for raw in response.content:
                if raw.startswith(b"event: delta"):
                    break
            # Leaving the block closed the connection, as the page's Stop button does.
        deadline = time.monotonic() + 5
        while metrics.analyses.labels("stopped")._value.get() == before:
            assert time.monotonic() < deadline, "the server never noticed the stop"
            await asyncio.sleep(0.05)
    finally:
        async with aiohttp.ClientSession() as http:
            await http.post(f"{sim}/_sim/config", json={"stream_chunk_delay_s": 0.01})


async def test_add_user_command_creates_a_login(review_env: ReviewEnv) -> None:
    name = f"cli-{new_prefix()[7:17]}"

    async def add_user() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            MODSTREAM,
            "review",
            "add-user",
            "--username",
            name,
            "--role",
            "lead",
            "--password-stdin",
            env=settings_env(review_env.settings),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(f"{PASSWORD}\n".encode()), timeout=60)
        return proc.returncode or 0, out.decode()

    code, out = await add_user()
    assert code == 0 and f"created lead {name}" in out
    code, out = await add_user()
    assert code == 2 and "already exists" in out
    async with await logged_in(review_env, name) as client:
        assert (await client.call("GET", "/api/me"))[1] == {"username": name, "role": "lead"}
