"""Web security of the review app: sessions, CSRF, roles and response headers (middlewares).

- Every route except ``/login`` and ``/static/`` needs a live session: API calls get 401, pages a
  redirect to the login form.
- Every state-changing request (not GET/HEAD/OPTIONS) must carry the session's CSRF token in the
  ``X-CSRF-Token`` header or a ``csrf_token`` form field, else 403. The login form, which has no
  session yet, uses a double-submit cookie instead.
- Lead-only handlers are wrapped in :func:`lead_only` (403 for reviewers).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from pipeline.review.accounts import Session
from pipeline.review.context import CONTEXT, SESSION

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "modstream_review_session"
LOGIN_CSRF_COOKIE = "modstream_review_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_public(request: web.Request) -> bool:
    return request.path == "/login" or request.path.startswith("/static/")


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def current_session(request: web.Request) -> Session:
    """The session the auth middleware attached (routes behind it always have one)."""
    session: Session | None = request.get(SESSION)
    if session is None:
        raise web.HTTPUnauthorized(text="log in first")
    return session


def _deny(request: web.Request, status: int, message: str) -> web.Response:
    if is_api(request) or request.method not in _SAFE_METHODS:
        return web.json_response({"error": message}, status=status)
    return web.Response(status=status, text=message)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
    return response


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    session = await request.app[CONTEXT].accounts.session(token) if token else None
    if session is not None:
        request[SESSION] = session
    elif not is_public(request):
        if is_api(request) or request.method not in _SAFE_METHODS:
            return _deny(request, 401, "log in first: your session is missing or expired")
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    return await handler(request)


async def _sent_token(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in _FORM_TYPES:
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


@web.middleware
async def require_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in _SAFE_METHODS or request.path.startswith("/static/"):
        return await handler(request)
    sent = await _sent_token(request)
    if request.path == "/login":
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    else:
        session: Session | None = request.get(SESSION)
        expected = session.csrf_token if session else ""
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        return _deny(request, 403, "missing or wrong CSRF token: reload the page and try again")
    return await handler(request)


def lead_only(handler: Handler) -> Handler:
    """Wrap a handler so only leads may call it (403 otherwise)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not current_session(request).is_lead:
            return _deny(request, 403, "this needs the lead role; ask a lead")
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


LOGIN_CSRF_LENGTH = 43  # characters of token_urlsafe(32)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(
    response: web.StreamResponse, name: str, value: str, *, max_age: int, secure: bool
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=secure
    )


def safe_next(target: str | None) -> str:
    """Only same-site absolute paths are followed after login (no open redirects)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"
