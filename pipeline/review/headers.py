"""Security headers on every response of the review app: pages, API, errors, redirects, streams.

Set in ``on_response_prepare``, which runs for every response aiohttp sends, including
exceptions turned into responses (404, 500), redirects and streamed (prepared) responses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from pipeline.review.limits import Transport

PrepareHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
HSTS = "max-age=31536000; includeSubDomains"
STATIC_PREFIX = "/static/"


def security_headers(transport: Transport) -> PrepareHook:
    """The ``on_response_prepare`` hook; HSTS only when the app is not bound to loopback."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(HEADERS)
        if not request.path.startswith(STATIC_PREFIX):
            response.headers["Cache-Control"] = "no-store"
        if transport.hsts:
            response.headers["Strict-Transport-Security"] = HSTS

    return add_headers
