"""The review web app: routes, middlewares, templates and static files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from pipeline.log import get_logger
from pipeline.review import api, pages
from pipeline.review.analysis import analysis
from pipeline.review.context import CONTEXT, ReviewContext
from pipeline.review.cost_view import percent, ratio, usd, utc
from pipeline.review.errors import ReviewError
from pipeline.review.headers import security_headers
from pipeline.review.inputs import reject_malformed
from pipeline.review.outage import postgres_outages
from pipeline.review.ratelimit import retry_after_header
from pipeline.review.security import is_api, require_csrf, require_session

STATIC = Path(__file__).with_name("static")
log = get_logger(__name__)


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
    env.filters["usd"] = usd
    env.filters["percent"] = percent
    env.filters["ratio"] = ratio
    env.filters["utc"] = utc
    return env


def _problem(request: web.Request, status: int, message: str) -> web.Response:
    if is_api(request) or request.method != "GET":
        return web.json_response({"error": message}, status=status)
    return pages.render(request, "error.html", status, message=message)


@web.middleware
async def review_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:class:`ReviewError` becomes its HTTP status with the message for the user; any other
    exception a 500 that names no internals (the log has its type)."""
    try:
        return await handler(request)
    except ReviewError as exc:
        response = _problem(request, exc.status, str(exc))
        if exc.retry_after is not None:
            response.headers["Retry-After"] = retry_after_header(exc.retry_after)
        return response
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the last resort: a 500 that leaks nothing
        # The type only: messages and tracebacks may quote post text or tokens.
        log.error("review.internal_error", error=type(exc).__name__, path=request.path)
        return _problem(request, 500, "something went wrong on our side; try again or report it")


def create_app(context: ReviewContext) -> web.Application:
    app = web.Application(
        middlewares=[
            review_errors,
            reject_malformed,
            postgres_outages(context.health),
            require_session,
            require_csrf,
        ],
        client_max_size=256 * 1024,
    )
    app[CONTEXT] = context
    app.on_response_prepare.append(security_headers(context.transport))
    pages.add_routes(app)
    api.add_routes(app)
    app.router.add_get("/api/items/{item_id}/analysis", analysis)
    app.router.add_static("/static/", STATIC, append_version=True)
    return app
