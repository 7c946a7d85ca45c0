"""Server-rendered HTML pages: login, queue, item, lead dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from pipeline.review.context import CONTEXT, SESSION, ReviewContext
from pipeline.review.core import should_blur
from pipeline.review.errors import ReviewError
from pipeline.review.filters import QueueFilter, parse_filter
from pipeline.review.security import (
    LOGIN_CSRF_COOKIE,
    LOGIN_CSRF_LENGTH,
    SESSION_COOKIE,
    current_session,
    lead_only,
    new_login_csrf,
    safe_next,
    set_cookie,
)


def _ctx(request: web.Request) -> ReviewContext:
    return request.app[CONTEXT]


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    """Render a template with the session (for the header and the CSRF meta tag)."""
    html = (
        _ctx(request)
        .templates.get_template(template)
        .render(session=request.get(SESSION), now=datetime.now(UTC), **values)
    )
    return web.Response(text=html, status=status, content_type="text/html")


def _login_form(request: web.Request, status: int = 200, error: str | None = None) -> web.Response:
    # Reuse the browser's token: a parallel request (e.g. the favicon redirected here) must not
    # replace the cookie behind a form that is already on screen.
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if len(token) != LOGIN_CSRF_LENGTH or not token.isascii():
        token = new_login_csrf()
    response = render(
        request,
        "login.html",
        status,
        csrf_token=token,
        next=safe_next(request.query.get("next")),
        error=error,
    )
    set_cookie(
        response,
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        secure=_ctx(request).settings.review_cookie_secure,
    )
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if request.get(SESSION) is not None:
        raise web.HTTPFound(safe_next(request.query.get("next")))
    return _login_form(request)


async def login(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or len(username) > 64:
        ctx.metrics.logins.labels("failed").inc()
        return _login_form(request, 400, "enter a username and a password")
    opened = await ctx.accounts.login(username.strip().lower(), password)
    if opened is None:
        ctx.metrics.logins.labels("failed").inc()
        return _login_form(request, 401, "wrong username or password")
    ctx.metrics.logins.labels("ok").inc()
    token, _session = opened
    target = form.get("next")
    response = web.HTTPFound(safe_next(target if isinstance(target, str) else None))
    set_cookie(
        response,
        SESSION_COOKIE,
        token,
        max_age=int(ctx.settings.review_session_ttl_seconds),
        secure=ctx.settings.review_cookie_secure,
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = current_session(request)
    await _ctx(request).accounts.logout(request.cookies.get(SESSION_COOKIE, ""), session.username)
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def queue_page(request: web.Request) -> web.StreamResponse:
    try:
        flt = parse_filter(request.query)
        error = None
    except ReviewError as exc:
        flt, error = QueueFilter(), str(exc)
    entries = await _ctx(request).queue.entries(flt)
    return render(
        request,
        "queue.html",
        400 if error else 200,
        entries=entries,
        flt=flt,
        error=error,
        reasons=["fallback", "escalate", "batch_flip", "appeal"],
        states=["open", "pending", "claimed", "decided", "all"],
    )


async def item_page(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    item = await ctx.queue.item(request.match_info["item_id"])
    categories = sorted(set(item["scores"]) | {c for h in item["history"] for c in h["categories"]})
    flagged = {c for h in item["history"][-1:] for c in h["categories"]}
    return render(
        request,
        "item.html",
        item=item,
        blur=should_blur(item["severity"], ctx.settings.review_blur_severity),
        categories=categories,
        flagged=flagged,
        mine=item["state"] == "claimed" and item["claimed_by"] == current_session(request).username,
        lease_seconds=ctx.queue.lease_seconds,
        analysis_enabled=ctx.analysis is not None,
    )


@lead_only
async def lead_page(request: web.Request) -> web.StreamResponse:
    return render(request, "lead.html", stats=await _ctx(request).queue.stats())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", queue_page)
    app.router.add_get("/items/{item_id}", item_page)
    app.router.add_get("/lead", lead_page)
