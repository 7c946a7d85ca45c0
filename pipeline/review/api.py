"""JSON API of the review app (the web UI's JavaScript calls the same endpoints)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from aiohttp import web

from pipeline.log import get_logger
from pipeline.review.audit_sample_view import parse_days
from pipeline.review.context import CONTEXT, ReviewContext
from pipeline.review.cost import parse_window
from pipeline.review.errors import InvalidInputError, NotFoundError
from pipeline.review.filters import parse_filter
from pipeline.review.inputs import json_object
from pipeline.review.rules import Role
from pipeline.review.security import current_session, lead_only, session_token
from schemas import Verdict
from schemas.fields import is_name

log = get_logger(__name__)
MAX_CATEGORIES = 32


def _default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _flat(record: Any) -> dict[str, Any]:
    """A flat dataclass (queue rows, claims) as a dict. ``dataclasses.asdict`` deep-copies every
    value; on the queue page that was 13 % of the app's CPU under ``bench review``."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=_default))


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInputError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string")
    return value


def _ctx(request: web.Request) -> ReviewContext:
    return request.app[CONTEXT]


async def me(request: web.Request) -> web.Response:
    session = current_session(request)
    return reply({"username": session.username, "role": session.role.value})


async def logout_others(request: web.Request) -> web.Response:
    """End every other session of the signed-in user (e.g. a forgotten browser elsewhere)."""
    session = current_session(request)
    ended = await _ctx(request).accounts.logout_others(
        session_token(request) or "", session.username
    )
    return reply({"ended": ended})


async def queue(request: web.Request) -> web.Response:
    page = await _ctx(request).queue.page(parse_filter(request.query))
    return reply({"items": [_flat(entry) for entry in page.entries], "next": page.next})


async def item(request: web.Request) -> web.Response:
    return reply(await _ctx(request).queue.item(request.match_info["item_id"]))


async def claim_next(request: web.Request) -> web.Response:
    ctx, session = _ctx(request), current_session(request)
    claim = await ctx.queue.claim(session.username, flt=parse_filter(request.query))
    ctx.metrics.claims.labels("claimed" if claim else "empty").inc()
    return reply({"claimed": _flat(claim) if claim else None})


async def claim(request: web.Request) -> web.Response:
    ctx, session = _ctx(request), current_session(request)
    got = await ctx.queue.claim(session.username, request.match_info["item_id"])
    ctx.metrics.claims.labels("claimed" if got else "empty").inc()
    return reply({"claimed": _flat(got) if got else None})


async def renew(request: web.Request) -> web.Response:
    expires = await _ctx(request).queue.renew(
        current_session(request).username, request.match_info["item_id"]
    )
    return reply({"lease_expires_at": expires})


async def release(request: web.Request) -> web.Response:
    session = current_session(request)
    force = bool((await json_object(request)).get("force"))
    if force and session.role is not Role.LEAD:
        return reply({"error": "releasing another reviewer's claim needs the lead role"}, 403)
    await _ctx(request).queue.release(session.username, request.match_info["item_id"], force=force)
    return reply({"released": True})


async def decide(request: web.Request) -> web.Response:
    ctx, session = _ctx(request), current_session(request)
    body = await json_object(request)
    raw_verdict = _text(body, "verdict", required=True)
    if raw_verdict not in {Verdict.ALLOW.value, Verdict.REMOVE.value}:
        raise InvalidInputError("verdict must be allow or remove")
    categories = body.get("categories") or []
    if (
        not isinstance(categories, list)
        or len(categories) > MAX_CATEGORIES
        or not all(is_name(c) for c in categories)
    ):
        raise InvalidInputError(
            f"categories must be a list of at most {MAX_CATEGORIES} names of 1-64 printable"
            " characters"
        )
    decided = await ctx.queue.decide(
        session.username,
        request.match_info["item_id"],
        Verdict(raw_verdict),
        categories,
        _text(body, "notes"),
    )
    ctx.metrics.decisions.labels(session.username, raw_verdict).inc()
    ctx.metrics.time_to_decision.observe(
        (decided.event.decided_at - decided.enqueued_at).total_seconds()
    )
    log.info(
        "review.decided",
        item_id=request.match_info["item_id"],
        decision_id=decided.event.decision_id,
        verdict=raw_verdict,
        published=decided.published,
    )
    return reply(
        {
            "decision_id": decided.event.decision_id,
            "verdict": raw_verdict,
            "appeal_outcome": decided.appeal_outcome,
            "published": decided.published,
        }
    )


async def appeal(request: web.Request) -> web.Response:
    body = await json_object(request)
    post_id = _text(body, "post_id", required=True) or ""
    if len(post_id) > 200:
        raise InvalidInputError("post_id must be at most 200 characters")
    item_id, created = await _ctx(request).queue.appeal(
        current_session(request).username, post_id, _text(body, "statement")
    )
    return reply({"item_id": item_id, "created": created}, 201 if created else 200)


@lead_only
async def stats(request: web.Request) -> web.Response:
    return reply(await _ctx(request).queue.stats())


@lead_only
async def lead_cost(request: web.Request) -> web.Response:
    """``modstream cost --json`` for ``?window=today|7d|30d`` (the lead dashboard's cost panel)."""
    window = parse_window(request.query.get("window"))
    reader = _ctx(request).cost
    if reader is None:
        raise NotFoundError("the cost panel is not configured in this app")
    return reply(await reader.document(window))


@lead_only
async def lead_audit(request: web.Request) -> web.Response:
    """Audit estimates for the last ``?days=N`` UTC days (the lead dashboard's audit panel)."""
    days = parse_days(request.query.get("days"))
    reader = _ctx(request).audit
    if reader is None:
        raise NotFoundError("the audit panel is not configured in this app")
    return reply(await reader.document(days))


@lead_only
async def create_user(request: web.Request) -> web.Response:
    body = await json_object(request)
    username = _text(body, "username", required=True) or ""
    password = _text(body, "password", required=True) or ""
    raw_role = _text(body, "role") or Role.REVIEWER.value
    if raw_role not in {r.value for r in Role}:
        raise InvalidInputError("role must be reviewer or lead")
    await _ctx(request).accounts.create_user(
        username, password, Role(raw_role), actor=current_session(request).username
    )
    return reply({"username": username, "role": raw_role}, 201)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/sessions/logout-others", logout_others)
    app.router.add_get("/api/queue", queue)
    app.router.add_post("/api/claim-next", claim_next)
    app.router.add_get("/api/items/{item_id}", item)
    app.router.add_post("/api/items/{item_id}/claim", claim)
    app.router.add_post("/api/items/{item_id}/renew", renew)
    app.router.add_post("/api/items/{item_id}/release", release)
    app.router.add_post("/api/items/{item_id}/decide", decide)
    app.router.add_post("/api/appeals", appeal)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/lead/cost", lead_cost)
    app.router.add_get("/api/lead/audit", lead_audit)
    app.router.add_post("/api/users", create_user)
