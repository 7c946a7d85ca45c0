"""Security headers on every kind of response, and malformed input answered 4xx on every route."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

from pipeline.review.headers import CONTENT_SECURITY_POLICY
from pipeline.review.limits import Transport
from pipeline.review.web import create_app
from tests.fixtures.review import ReviewEnv, logged_in, new_prefix, review_env, seed_items, served

pytestmark = pytest.mark.integration
__all__ = ["review_env"]

_ALWAYS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _check(headers: CIMultiDictProxy[str], what: str, *, cached: bool = False) -> None:
    for name, value in _ALWAYS.items():
        assert headers.get(name) == value, (what, name)
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    if not cached:
        assert headers.get("Cache-Control") == "no-store", what
    assert "Strict-Transport-Security" not in headers, what  # loopback


async def test_every_kind_of_response_carries_the_security_headers(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    async with aiohttp.ClientSession(base_url=review_env.base_url) as anonymous:
        for what, path, status in (
            ("login page", "/login", 200),
            ("redirect", "/", 302),
            ("api 401", "/api/me", 401),
            ("static 404", "/static/no-such-file.js", 404),
        ):
            async with anonymous.get(path, allow_redirects=False) as response:
                assert response.status == status, what
                _check(response.headers, what, cached=path.startswith("/static/"))
        async with anonymous.post("/login", data={}, allow_redirects=False) as response:
            assert response.status == 403
            _check(response.headers, "login without CSRF")
        async with anonymous.get("/static/review.js") as response:
            assert response.status == 200
            _check(response.headers, "static file", cached=True)
    async with await logged_in(review_env, review_env.reviewer) as client:
        for what, method, path, status in (
            ("page", "GET", "/", 200),
            ("api", "GET", "/api/me", 200),
            ("router 404", "GET", "/no/such/page", 404),
            ("page 404", "GET", "/items/no-such-item", 404),
            ("api 404", "GET", "/api/items/no-such-item", 404),
            ("lead-only 403", "GET", "/lead", 403),
            ("api 400", "GET", "/api/queue?limit=0", 400),
            ("csrf 403", "POST", "/api/claim-next", 403),
        ):
            async with client.http.request(method, path, allow_redirects=False) as response:
                assert response.status == status, what
                _check(response.headers, what)
        async with client.http.get(f"/api/items/{item.item_id}/analysis") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            _check(response.headers, "event stream")
            await response.read()


async def test_a_500_carries_the_headers_and_names_no_internals(review_env: ReviewEnv) -> None:
    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError("secret internals: post text here")

    def add_boom(app: web.Application) -> None:
        app.router.add_get("/api/boom", boom)
        app.router.add_get("/boom", boom)

    async with served(review_env.app.context, add_boom) as url:
        client = await logged_in(review_env, review_env.reviewer, base_url=url)
        async with client:
            for path in ("/api/boom", "/boom"):
                async with client.http.get(path) as response:
                    assert response.status == 500
                    _check(response.headers, f"500 at {path}")
                    assert "secret" not in await response.text()


async def test_hsts_is_sent_off_loopback_on_every_response(review_env: ReviewEnv) -> None:
    remote = dataclasses.replace(review_env.app.context, transport=Transport.for_host("10.0.0.8"))
    async with served(remote) as url, aiohttp.ClientSession(base_url=url) as http:
        for path in ("/login", "/", "/api/me", "/nowhere", "/static/review.css"):
            async with http.get(path, allow_redirects=False) as response:
                assert response.headers["Strict-Transport-Security"].startswith("max-age="), path


# --- malformed input on every route ---------------------------------------------------------


def _routes(env: ReviewEnv) -> list[tuple[str, str]]:
    app = create_app(env.app.context)
    found = {("POST", "/login"), ("GET", "/login")}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method == "HEAD" or not path or path.startswith("/static"):
            continue
        found.add((route.method, path))
    return sorted(found)


_BAD_BYTES = [b"%00", b"%ff", b"%ed%a0%80", b"%c3%28", b"\xff", b"\xed\xa0\x80", b"\x00"]
_BAD_JSON = ["\x00", "\ud800", "a\udfffb", "\u0000x"]
_HOSTILE = st.one_of(
    st.sampled_from(_BAD_BYTES),
    st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=20),
)
_JSON_VALUE = st.one_of(
    st.sampled_from(_BAD_JSON),
    st.text(max_size=20),
    st.lists(st.sampled_from(_BAD_JSON), max_size=3),
    st.dictionaries(st.sampled_from(_BAD_JSON), st.integers(), max_size=2),
)
_FIELDS = ["verdict", "categories", "notes", "post_id", "statement", "username", "password",
           "role", "force", "next", "csrf_token"]  # fmt: skip


def _safe_raw(raw: bytes, *, for_url: bool) -> bytes:
    """Bytes that keep the request parseable: no CR/LF, and no space or '#' in a URL."""
    raw = raw.replace(b"\r", b"%0d").replace(b"\n", b"%0a")
    if for_url:
        raw = raw.replace(b" ", b"%20").replace(b"#", b"%23").replace(b"?", b"%3f")
    return raw


async def _raw_status(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    finally:
        writer.close()
    return int(status_line.split()[1])


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.integers(min_value=0, max_value=100),
    where=st.sampled_from(["path", "query", "csrf", "header", "cookie", "json", "form"]),
    raw=_HOSTILE,
    value=_JSON_VALUE,
    field=st.sampled_from(_FIELDS),
)
async def test_malformed_input_anywhere_is_a_4xx_never_a_500(
    review_env: ReviewEnv, route: int, where: str, raw: bytes, value: object, field: str
) -> None:
    routes = _routes(review_env)
    method, template = routes[route % len(routes)]
    client = await logged_in(review_env, review_env.reviewer)
    async with client:
        cookies = "; ".join(f"{c.key}={c.value}" for c in client.http.cookie_jar)
        csrf = client.csrf.encode()
    item = _safe_raw(raw, for_url=True) if where == "path" else b"no-such-item"
    target = template.encode().replace(b"{item_id}", item)
    query = b"post=" + quote(new_prefix()).encode()  # claim-next stays inside an empty view
    if where == "query":
        query += b"&" + field.encode() + b"=" + _safe_raw(raw, for_url=True)
    headers = [(b"Host", b"127.0.0.1"), (b"Cookie", cookies.encode()), (b"X-CSRF-Token", csrf)]
    if where == "csrf":
        headers[2] = (b"X-CSRF-Token", _safe_raw(raw, for_url=False))
    elif where == "header":
        headers.append((b"X-Anything", _safe_raw(raw, for_url=False)))
    elif where == "cookie":
        headers[1] = (b"Cookie", b"modstream_review_session=" + _safe_raw(raw, for_url=False))
    body = b""
    if where == "json":
        body = json.dumps({field: value}).encode()
        headers.append((b"Content-Type", b"application/json"))
    elif where == "form":
        body = field.encode() + b"=" + _safe_raw(raw, for_url=True) + b"&csrf_token=" + csrf
        headers.append((b"Content-Type", b"application/x-www-form-urlencoded"))
    headers.append((b"Content-Length", str(len(body)).encode()))
    head = b"%s %s?%s HTTP/1.1\r\n" % (method.encode(), target, query)
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    request = head + b"Connection: close\r\n\r\n" + body
    status = await _raw_status(review_env.app.port, request)
    assert status < 500, (method, template, where, raw, value)
