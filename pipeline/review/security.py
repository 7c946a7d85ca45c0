"""Web security of the review app: sessions, CSRF, roles and safe redirects (middlewares).

- Every route except ``/login`` and ``/static/`` needs a live session: API calls get 401, pages a
  redirect to the login form.
- Every state-changing request (not GET/HEAD/OPTIONS) must carry the session's CSRF token in the
  ``X-CSRF-Token`` header or a ``csrf_token`` form field, else 403. The login form, which has no
  session yet, uses a double-submit cookie instead.
- Lead-only handlers are wrapped in :func:`lead_only` (403 for reviewers).
- Cookie names and flags come from :class:`~pipeline.review.limits.Transport` (``__Host-`` and
  ``Secure`` unless bound to loopback); response headers are set in :mod:`.headers`.
"""

from __future__ import annotations

import hmac
import re
import secrets
import unicodedata
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from pipeline.review.accounts import Session
from pipeline.review.context import CONTEXT, SESSION
from pipeline.review.inputs import form

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""What ``secrets.token_urlsafe(32)`` produces: session, CSRF and login-CSRF tokens."""
_MAX_NEXT = 2000
_DECODE_ROUNDS = 4


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


def session_token(request: web.Request) -> str | None:
    """The session cookie's token, if it is well-formed."""
    token = request.cookies.get(request.app[CONTEXT].transport.session_cookie, "")
    return token if TOKEN.match(token) else None


def deny(request: web.Request, status: int, message: str) -> web.Response:
    if is_api(request) or request.method not in _SAFE_METHODS:
        return web.json_response({"error": message}, status=status)
    return web.Response(status=status, text=message)


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = session_token(request)
    session = await request.app[CONTEXT].accounts.session(token) if token else None
    if session is not None:
        request[SESSION] = session
    elif not is_public(request):
        if is_api(request) or request.method not in _SAFE_METHODS:
            return deny(request, 401, "log in first: your session is missing or expired")
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    return await handler(request)


async def _sent_token(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in _FORM_TYPES:
        return (await form(request)).get(CSRF_FIELD, "")
    return ""


@web.middleware
async def require_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in _SAFE_METHODS or request.path.startswith("/static/"):
        return await handler(request)
    sent = await _sent_token(request)
    if request.path == "/login":
        expected = request.cookies.get(request.app[CONTEXT].transport.login_csrf_cookie, "")
    else:
        session: Session | None = request.get(SESSION)
        expected = session.csrf_token if session else ""
    if (
        not TOKEN.match(sent)
        or not TOKEN.match(expected)
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        return deny(request, 403, "missing or wrong CSRF token: reload the page and try again")
    return await handler(request)


def lead_only(handler: Handler) -> Handler:
    """Wrap a handler so only leads may call it (403 otherwise)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not current_session(request).is_lead:
            return deny(request, 403, "this needs the lead role; ask a lead")
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               *, max_age: int) -> None:  # fmt: skip
    """An HttpOnly, SameSite=Strict cookie for the whole site, Secure per the transport."""
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Strict",
        secure=request.app[CONTEXT].transport.secure_cookies,
    )  # fmt: skip


def _unsafe(target: str) -> bool:
    """Not a same-site absolute path, or holds a control character."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return True
    if ".." in target.split("?", 1)[0].replace("\\", "/").split("/"):
        return True  # dot segments could climb to "//host" once normalised
    return any(unicodedata.category(ch) in {"Cc", "Cs", "Zl", "Zp"} for ch in target)


def safe_next(target: str | None) -> str:
    """The post-login redirect target if it is a same-site path, else ``/``.

    Refused: anything not starting with a single ``/``, ``//`` and ``/\\`` (other hosts), and any
    control character, also after percent-decoding (browsers drop TAB/CR/LF, so ``/<TAB>/evil``
    would become ``//evil``). The answer is what aiohttp puts in ``Location``.
    """
    if not target or len(target) > _MAX_NEXT:
        return "/"
    layer = target
    for _ in range(_DECODE_ROUNDS):
        if _unsafe(layer):
            return "/"
        decoded = unquote(layer)
        if decoded == layer:
            break
        layer = decoded
    else:
        return "/"  # still encoded after several rounds: nothing a real page links to
    try:
        location = str(URL(target))
    except (ValueError, UnicodeError):
        return "/"
    if _unsafe(location) or urlsplit(location).netloc or str(URL(location)) != location:
        return "/"
    return location
