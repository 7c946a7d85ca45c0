"""The review web app: routes, middlewares, templates and static files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
from aiohttp import web

from pipeline.review import api, pages
from pipeline.review.analysis import analysis
from pipeline.review.context import CONTEXT, ReviewContext
from pipeline.review.errors import ReviewError
from pipeline.review.security import (
    Handler,
    is_api,
    require_csrf,
    require_session,
    security_headers,
)

STATIC = Path(__file__).with_name("static")


def _age(moment: datetime | None) -> str:
    """A compact age such as ``42s``, ``7m``, ``3h``, ``2d``."""
    if moment is None:
        return ""
    seconds = max((datetime.now(UTC) - moment).total_seconds(), 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.review", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["age"] = _age
    env.filters["duration"] = _duration
    return env


@web.middleware
async def review_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:class:`ReviewError` becomes its HTTP status with the message for the user."""
    try:
        return await handler(request)
    except ReviewError as exc:
        if is_api(request) or request.method != "GET":
            return web.json_response({"error": str(exc)}, status=exc.status)
        return pages.render(request, "error.html", exc.status, message=str(exc))


def create_app(context: ReviewContext) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, review_errors, require_session, require_csrf],
        client_max_size=256 * 1024,
    )
    app[CONTEXT] = context
    pages.add_routes(app)
    api.add_routes(app)
    app.router.add_get("/api/items/{item_id}/analysis", analysis)
    app.router.add_static("/static/", STATIC, append_version=True)
    return app
