"""Server-rendered HTML pages: login, queue, item, lead dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from pipeline.log import get_logger
from pipeline.review.audit_sample_view import audit_panel
from pipeline.review.context import CONTEXT, SESSION, ReviewContext
from pipeline.review.cost import CostWindow
from pipeline.review.cost_view import panel
from pipeline.review.errors import BusyError, ReviewError
from pipeline.review.filters import QueueFilter, parse_filter
from pipeline.review.inputs import form
from pipeline.review.ratelimit import retry_after_header
from pipeline.review.rules import should_blur
from pipeline.review.security import (
    TOKEN,
    current_session,
    lead_only,
    new_login_csrf,
    safe_next,
    session_token,
    set_cookie,
)

log = get_logger(__name__)


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


def _login_form(
    request: web.Request,
    status: int = 200,
    error: str | None = None,
    *,
    retry_after: float | None = None,
) -> web.Response:
    # Reuse the browser's token: a parallel request (e.g. the favicon redirected here) must not
    # replace the cookie behind a form that is already on screen.
    cookie = _ctx(request).transport.login_csrf_cookie
    token = request.cookies.get(cookie) or ""
    if not TOKEN.match(token):
        token = new_login_csrf()
    response = render(
        request,
        "login.html",
        status,
        csrf_token=token,
        next=safe_next(request.query.get("next")),
        error=error,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after_header(retry_after)
    set_cookie(request, response, cookie, token, max_age=3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if request.get(SESSION) is not None:
        raise web.HTTPFound(safe_next(request.query.get("next")))
    return _login_form(request)


async def login(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    fields = await form(request)
    username, password = fields.get("username"), fields.get("password")
    if username is None or password is None or len(username) > 64:
        ctx.metrics.logins.labels("failed").inc()
        return _login_form(request, 400, "enter a username and a password")
    username = username.strip().lower()
    address = request.remote or "unknown"
    throttled = ctx.throttle.admit(address, username)
    if throttled is not None:
        ctx.metrics.logins.labels("throttled").inc()
        await ctx.accounts.record_throttled(username, address, throttled.scope.value)
        log.info("review.login_throttled", scope=throttled.scope.value)
        return _login_form(
            request,
            429,
            "too many failed sign-ins; wait a few minutes, then try again",
            retry_after=throttled.retry_after_s,
        )
    try:
        opened = await ctx.accounts.login(username, password)
    except BusyError as exc:
        ctx.metrics.logins.labels("busy").inc()
        return _login_form(request, exc.status, str(exc), retry_after=exc.retry_after)
    if opened is None:
        ctx.metrics.logins.labels("failed").inc()
        return _login_form(request, 401, "wrong username or password")
    ctx.throttle.succeeded(address, username)
    ctx.metrics.logins.labels("ok").inc()
    token, _session = opened
    response = web.HTTPFound(safe_next(fields.get("next")))
    set_cookie(
        request,
        response,
        ctx.transport.session_cookie,
        token,
        max_age=int(ctx.limits.session_ttl_s),
    )
    response.del_cookie(
        ctx.transport.login_csrf_cookie, path="/", secure=ctx.transport.secure_cookies
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    ctx, session = _ctx(request), current_session(request)
    await ctx.accounts.logout(session_token(request) or "", session.username)
    response = web.HTTPFound("/login")
    response.del_cookie(ctx.transport.session_cookie, path="/", secure=ctx.transport.secure_cookies)
    raise response


async def queue_page(request: web.Request) -> web.StreamResponse:
    try:
        flt = parse_filter(request.query)
        error = None
    except ReviewError as exc:
        flt, error = QueueFilter(), str(exc)
    page = await _ctx(request).queue.page(flt)
    next_url = None
    if page.next is not None:
        kept = {k: v for k, v in request.query.items() if k != "after"}
        next_url = "/?" + urlencode({**kept, "after": page.next})
    return render(
        request,
        "queue.html",
        400 if error else 200,
        entries=page.entries,
        next_url=next_url,
        flt=flt,
        error=error,
        reasons=["fallback", "escalate", "batch_flip", "appeal", "audit"],
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
    ctx = _ctx(request)
    stats = await ctx.queue.stats()
    panels = []
    if ctx.cost is not None:
        docs = await ctx.cost.all_windows()
        panels = [panel(doc, w.value, w.heading) for w, doc in zip(CostWindow, docs, strict=True)]
    shown = request.query.get("cost", CostWindow.TODAY.value)
    if shown not in {w.value for w in CostWindow}:
        shown = CostWindow.TODAY.value
    audit = audit_panel(await ctx.audit.document()) if ctx.audit is not None else None
    return render(request, "lead.html", stats=stats, cost=panels, cost_shown=shown, audit=audit)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", queue_page)
    app.router.add_get("/items/{item_id}", item_page)
    app.router.add_get("/lead", lead_page)
