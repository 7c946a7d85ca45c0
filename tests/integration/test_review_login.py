"""Login hardening against the real app: throttling, the argon2 pool, redirects, sessions, cookies."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

from pipeline.config import Settings
from pipeline.review.limits import Transport
from tests.fixtures.review import (
    PASSWORD,
    ReviewClient,
    ReviewEnv,
    logged_in,
    review_env,
    served,
    started_review,
)
from tests.fixtures.services import fetch_rows

pytestmark = pytest.mark.integration
__all__ = ["review_env"]

MAX_FAILURES = 3
MAX_PER_ADDRESS = 6
_sources = iter(f"127.0.{i // 250}.{i % 250 + 2}" for i in range(1, 10_000))


def new_source() -> str:
    """A loopback address of its own, so per-address limits of one test never hit another."""
    return next(_sources)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def strict_env(stack_settings: Settings) -> AsyncIterator[ReviewEnv]:
    async with started_review(
        stack_settings,
        review_login_max_failures=MAX_FAILURES,
        review_login_max_failures_per_address=MAX_PER_ADDRESS,
        review_login_window_seconds=120.0,
        review_session_idle_seconds=2.0,
    ) as env:
        yield env


async def _attempt(
    client: ReviewClient, token: str, username: str, password: str
) -> tuple[int, CIMultiDictProxy[str], str]:
    async with client.http.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
    ) as response:
        return response.status, response.headers, await response.text()


async def _audit(env: ReviewEnv, actor: str, action: str) -> list[dict[str, object]]:
    rows = await fetch_rows(
        env.settings,
        "SELECT detail FROM audit_log WHERE actor = $1 AND action = $2 ORDER BY audit_id",
        actor,
        action,
    )
    return [dict(row) for row in rows]


async def test_failures_per_username_answer_429_alike_for_known_and_unknown_names(
    strict_env: ReviewEnv,
) -> None:
    unknown = f"nobody-{uuid.uuid4().hex[:8]}"
    outcomes: dict[str, list[tuple[int, str]]] = {}
    for name in (strict_env.reviewer, unknown):
        async with ReviewClient(strict_env.base_url, source=new_source()) as client:
            token = await client.login_token()
            seen = []
            for _ in range(MAX_FAILURES + 2):
                status, headers, html = await _attempt(client, token, name, "wrong password!!")
                seen.append((status, headers.get("Retry-After", "")))
                message = html.split('class="error">')[1].split("<")[0]
                seen[-1] = (status, message)
                if status == 429:
                    assert 0 < int(headers["Retry-After"]) <= 120
            outcomes[name] = seen
            # The right password does not get through while the name is throttled.
            status, _, _ = await _attempt(client, token, name, PASSWORD)
            assert status == 429
    assert [s for s, _ in outcomes[strict_env.reviewer]] == [401] * MAX_FAILURES + [429, 429]
    assert outcomes[strict_env.reviewer] == outcomes[unknown], "nothing tells the names apart"
    for name in (strict_env.reviewer, unknown):
        throttled = await _audit(strict_env, name, "login.throttled")
        assert len(throttled) == 3 and all('"username"' in str(r["detail"]) for r in throttled)


async def test_failures_per_address_answer_429_for_any_name(strict_env: ReviewEnv) -> None:
    source = new_source()
    async with ReviewClient(strict_env.base_url, source=source) as client:
        token = await client.login_token()
        names = [f"guess-{i}-{uuid.uuid4().hex[:6]}" for i in range(MAX_PER_ADDRESS + 1)]
        statuses = [(await _attempt(client, token, n, "wrong password!!"))[0] for n in names]
        assert statuses == [401] * MAX_PER_ADDRESS + [429]
    [row] = await _audit(strict_env, names[-1], "login.throttled")
    assert source in str(row["detail"]) and '"address"' in str(row["detail"])
    async with ReviewClient(strict_env.base_url, source=new_source()) as other:
        assert await other.login(await strict_env.user()) == 302, "other addresses go on"


async def test_a_success_forgives_earlier_failures_of_the_name(strict_env: ReviewEnv) -> None:
    name = await strict_env.user()
    async with ReviewClient(strict_env.base_url, source=new_source()) as client:
        token = await client.login_token()
        for _ in range(MAX_FAILURES - 1):
            assert (await _attempt(client, token, name, "wrong password!!"))[0] == 401
        assert await client.login(name) == 302
    async with ReviewClient(strict_env.base_url, source=new_source()) as client:
        token = await client.login_token()
        statuses = [(await _attempt(client, token, name, "nope nope nope"))[0] for _ in range(3)]
        assert statuses == [401] * 3


async def test_a_concurrent_burst_is_throttled_too(strict_env: ReviewEnv) -> None:
    name = f"burst-{uuid.uuid4().hex[:8]}"
    async with ReviewClient(strict_env.base_url, source=new_source()) as client:
        token = await client.login_token()
        results = await asyncio.gather(
            *(_attempt(client, token, name, "wrong password!!") for _ in range(12))
        )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [401] * MAX_FAILURES + [429] * (12 - MAX_FAILURES)


async def test_me_stays_fast_during_a_flood_of_wrong_passwords(stack_settings: Settings) -> None:
    """~100 concurrent wrong-password logins; a signed-in reviewer's /api/me keeps answering."""
    async with (
        started_review(
            stack_settings,
            review_login_max_failures=10_000,
            review_login_max_failures_per_address=10_000,
            review_password_workers=2,
            review_password_queue=150,
        ) as env,
        await logged_in(env, env.reviewer) as reviewer,
        ReviewClient(env.base_url) as attacker,
    ):
        token = await attacker.login_token()
        flood = asyncio.gather(
            *(_attempt(attacker, token, env.lead, f"guess number {i:04d}") for i in range(100))
        )
        latencies: list[float] = []
        while not flood.done() or len(latencies) < 5:
            started = time.perf_counter()
            status, body = await reviewer.call("GET", "/api/me")
            latencies.append(time.perf_counter() - started)
            assert status == 200 and body["username"] == env.reviewer
        results = await flood
    assert {status for status, _, _ in results} <= {401, 503}
    assert sum(status == 401 for status, _, _ in results) >= 50, "the flood was really checked"
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    print(f"/api/me during the flood: n={len(latencies)} p50={statistics.median(latencies):.3f}s "
          f"p95={p95:.3f}s max={max(latencies):.3f}s")  # fmt: skip
    assert p95 < 1.0


_NEXT = st.one_of(
    st.text(max_size=25),
    st.text(alphabet=st.sampled_from(list("/\\\t\r\n\x0b\x7f%09aZe.:@?#")), max_size=25).map(
        lambda s: "/" + s
    ),
    st.sampled_from(["/\t/evil.example", "/%09/evil.example", "/\\/evil.example", "/..//evil"]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=_NEXT)
async def test_the_post_login_redirect_stays_on_the_site(
    review_env: ReviewEnv, target: str
) -> None:
    async with ReviewClient(review_env.base_url) as client:
        token = await client.login_token()
        async with client.http.post(
            "/login",
            data={
                "username": review_env.reviewer,
                "password": PASSWORD,
                "csrf_token": token,
                "next": target.replace("\x00", ""),
            },
            allow_redirects=False,
        ) as response:
            assert response.status == 302
            location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert location.isprintable()
    assert urlsplit(urljoin("https://review.example/a/", location)).netloc == "review.example"


async def test_the_tab_trick_no_longer_redirects_off_site(review_env: ReviewEnv) -> None:
    async with ReviewClient(review_env.base_url) as client:
        token = await client.login_token()
        async with client.http.post(
            "/login",
            data={
                "username": review_env.reviewer,
                "password": PASSWORD,
                "csrf_token": token,
                "next": "/\t/evil.example",
            },
            allow_redirects=False,
        ) as response:
            assert response.headers["Location"] == "/"


async def _session_row(env: ReviewEnv, username: str) -> dict[str, object]:
    [row] = await fetch_rows(
        env.settings,
        "SELECT extract(epoch FROM expires_at - now())::float8 AS left_s, "
        "expires_at < now() AS over FROM review_sessions WHERE username = $1",
        username,
    )
    return dict(row)


async def _session_over(env: ReviewEnv, username: str) -> bool:
    """Expired, or already swept away (the app deletes expired sessions)."""
    rows = await fetch_rows(
        env.settings,
        "SELECT expires_at < now() AS over FROM review_sessions WHERE username = $1",
        username,
    )
    return not rows or bool(rows[0]["over"])


async def test_an_idle_session_ends_while_a_busy_one_lives_on(strict_env: ReviewEnv) -> None:
    idle_name, busy_name = await strict_env.user(), await strict_env.user()
    async with (
        await logged_in(strict_env, idle_name) as idle,
        await logged_in(strict_env, busy_name) as busy,
    ):
        assert (await _session_row(strict_env, idle_name))["left_s"] <= 2.0  # type: ignore[operator]
        deadline = time.monotonic() + 30
        while not await _session_over(strict_env, idle_name):
            assert time.monotonic() < deadline, "the idle session never expired"
            assert (await busy.call("GET", "/api/me"))[0] == 200, "activity keeps a session"
        assert (await idle.call("GET", "/api/me"))[0] == 401
        assert (await busy.call("GET", "/api/me"))[0] == 200
        assert not (await _session_row(strict_env, busy_name))["over"]


async def test_a_request_moves_the_idle_clock_only_when_that_gains_a_tenth_of_it(
    review_env: ReviewEnv,
) -> None:
    # Most requests only read their session (no write, no WAL flush per request).
    name = await review_env.user()
    idle = review_env.settings.review_session_idle_seconds
    slack = min(60.0, idle / 10)
    async with await logged_in(review_env, name) as client:
        expiry = "SELECT expires_at FROM review_sessions WHERE username = $1"
        [before] = await fetch_rows(review_env.settings, expiry, name)
        for _ in range(3):
            assert (await client.call("GET", "/api/me"))[0] == 200
        [after] = await fetch_rows(review_env.settings, expiry, name)
        assert after["expires_at"] == before["expires_at"]
        await fetch_rows(
            review_env.settings,
            "UPDATE review_sessions SET expires_at = now() + make_interval(secs => $2) "
            "WHERE username = $1 RETURNING 1",
            name,
            idle - 2 * slack,
        )
        assert (await client.call("GET", "/api/me"))[0] == 200
        left = (await _session_row(review_env, name))["left_s"]
        assert idle - slack < left <= idle  # type: ignore[operator]


async def test_the_absolute_ttl_still_caps_an_active_session(review_env: ReviewEnv) -> None:
    name = await review_env.user()
    async with await logged_in(review_env, name) as client:
        ttl = review_env.settings.review_session_ttl_seconds
        await fetch_rows(
            review_env.settings,
            "UPDATE review_sessions SET created_at = now() - make_interval(secs => $2) "
            "WHERE username = $1 RETURNING 1",
            name,
            ttl - 3.0,
        )
        assert (await client.call("GET", "/api/me"))[0] == 200
        left = (await _session_row(review_env, name))["left_s"]
        assert left <= 3.0, "activity cannot extend a session past its TTL"  # type: ignore[operator]


async def test_log_out_my_other_sessions(review_env: ReviewEnv) -> None:
    name = await review_env.user()
    async with (
        await logged_in(review_env, name) as here,
        await logged_in(review_env, name) as there,
        await logged_in(review_env, review_env.reviewer) as someone_else,
    ):
        status, body = await here.call("POST", "/api/sessions/logout-others")
        assert status == 200 and body == {"ended": 1}
        assert (await there.call("GET", "/api/me"))[0] == 401
        assert (await here.call("GET", "/api/me"))[0] == 200
        assert (await someone_else.call("GET", "/api/me"))[0] == 200
        assert (await here.call("POST", "/api/sessions/logout-others", csrf=False))[0] == 403
    [row] = await _audit(review_env, name, "logout.others")
    assert '"sessions": 1' in str(row["detail"])


def _session_cookie(headers: CIMultiDictProxy[str]) -> str:
    return next(h for h in headers.getall("Set-Cookie") if "modstream_review_session=" in h)


async def test_on_loopback_the_cookie_is_plain_and_there_is_no_hsts(review_env: ReviewEnv) -> None:
    async with ReviewClient(review_env.base_url) as client:
        token = await client.login_token()
        status, headers, _ = await _attempt(client, token, review_env.reviewer, PASSWORD)
    cookie = _session_cookie(headers)
    assert status == 302 and cookie.startswith("modstream_review_session=")
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Strict-Transport-Security" not in headers


async def _login_with_host_cookies(url: str, username: str) -> CIMultiDictProxy[str]:
    """Log in where cookies are ``__Host-``/Secure: over plain http the client's jar would not
    send them back, so the test sends the Cookie header itself."""
    async with aiohttp.ClientSession(base_url=url) as http:
        async with http.get("/login") as response:
            html = await response.text()
            login_cookie = next(
                h for h in response.headers.getall("Set-Cookie") if "login_csrf" in h
            )
        assert login_cookie.startswith("__Host-modstream_review_login_csrf=")
        assert "Secure" in login_cookie
        token = html.split('name="csrf_token" value="')[1].split('"')[0]
        async with http.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token},
            headers={"Cookie": f"__Host-modstream_review_login_csrf={token}"},
            allow_redirects=False,
        ) as response:
            assert response.status == 302
            return response.headers


async def test_off_loopback_the_cookie_is_secure_and_host_prefixed(review_env: ReviewEnv) -> None:
    remote = dataclasses.replace(review_env.app.context, transport=Transport.for_host("0.0.0.0"))
    async with served(remote) as url:
        headers = await _login_with_host_cookies(url, review_env.reviewer)
        cookie = _session_cookie(headers)
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        assert cookie.startswith("__Host-modstream_review_session=")
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
        session = cookie.split(";")[0].split("=", 1)[1]
        async with aiohttp.ClientSession(base_url=url) as http:
            for name, expected in (
                ("__Host-modstream_review_session", 200),
                ("modstream_review_session", 401),  # the plain name is not read off loopback
            ):
                async with http.get("/api/me", headers={"Cookie": f"{name}={session}"}) as reply:
                    assert reply.status == expected, name


async def test_the_cookie_setting_overrides_the_loopback_default(stack_settings: Settings) -> None:
    async with started_review(stack_settings, review_cookie_secure=True) as env:
        cookie = _session_cookie(await _login_with_host_cookies(env.base_url, env.reviewer))
    assert cookie.startswith("__Host-modstream_review_session=") and "Secure" in cookie
