"""Streamed frontier analysis of a post, relayed to the browser as server-sent events.

``GET /api/items/{item_id}/analysis`` answers ``text/event-stream`` with events ``start``,
``first_token`` (``{"ttft_ms": ...}``), ``delta`` (``{"text": ...}``) and finally ``done`` or
``error``. Closing the connection (the page's Stop button) stops the upstream stream too.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from aiohttp import web

from pipeline.errors import ModerationError
from pipeline.log import get_logger
from pipeline.review.context import CONTEXT
from pipeline.review.security import current_session

log = get_logger(__name__)


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event (JSON data never contains a raw newline)."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _close(stream: AsyncIterator[str]) -> None:
    if isinstance(stream, AsyncGenerator):
        await stream.aclose()


async def analysis(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    session = current_session(request)
    item_id = request.match_info["item_id"]
    if ctx.analysis is None:
        return web.json_response(
            {"error": f"streamed analysis is unavailable: {ctx.analysis_unavailable}"}, status=503
        )
    text = await ctx.queue.post_text(item_id)
    await ctx.queue.record(session.username, "analysis", item_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    started = time.monotonic()
    stream = ctx.analysis(text)
    outcome, chars, first = "stopped", 0, True
    try:
        await response.write(sse("start", {"item_id": item_id}))
        async for delta in stream:
            if first:
                first = False
                ttft = time.monotonic() - started
                ctx.metrics.analysis_ttft.observe(ttft)
                await response.write(sse("first_token", {"ttft_ms": round(ttft * 1000)}))
            chars += len(delta)
            await response.write(sse("delta", {"text": delta}))
        await response.write(
            sse("done", {"chars": chars, "total_ms": round((time.monotonic() - started) * 1000)})
        )
        outcome = "completed"
    except ConnectionError:
        pass  # the reviewer pressed Stop or left the page
    except ModerationError as exc:
        outcome = "failed"
        with contextlib.suppress(ConnectionError):
            await response.write(sse("error", {"message": f"analysis failed: {exc}"}))
    finally:
        await _close(stream)
        ctx.metrics.analyses.labels(outcome).inc()
        log.info("review.analysis", item_id=item_id, outcome=outcome, chars=chars)
    return response
