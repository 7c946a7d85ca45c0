"""Streamed frontier analysis of a post, relayed to the browser as server-sent events.

``GET /api/items/{item_id}/analysis`` answers ``text/event-stream`` with events ``start``,
``first_token`` (``{"ttft_ms": ...}``), ``delta`` (``{"text": ...}``) and finally ``done`` or
``error``. Closing the connection (the page's Stop button) stops the upstream stream too.

Admission (per-session concurrency, per-user rate, the reviewers' token budget) is
:class:`~pipeline.review.gate.AnalysisGate`: a refusal is 429 with ``Retry-After`` before the
stream starts. So is a reached daily streaming budget (:mod:`pipeline.review.budget`: 429, or 503
while the budget store is unreachable). A stream longer than ``analysis_max_s`` is cut off with an
``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from aiohttp import web

from pipeline.errors import ModerationError
from pipeline.log import get_logger
from pipeline.review.budget import analysis_budget
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
    with ctx.gate.admit(session.csrf_token, session.username, text):
        async with analysis_budget(ctx.budget, text):  # 429/503 before streaming when refused
            await ctx.queue.record(session.username, "analysis", item_id)
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
            )
            await response.prepare(request)
            await _relay(request, response, ctx.analysis(text), item_id)
    return response


async def _relay(
    request: web.Request, response: web.StreamResponse, stream: AsyncIterator[str], item_id: str
) -> None:
    """Write the stream's deltas as events until it ends, fails, stops or runs too long."""
    ctx = request.app[CONTEXT]
    started = time.monotonic()
    outcome, chars, first = "stopped", 0, True
    try:
        await response.write(sse("start", {"item_id": item_id}))
        async with asyncio.timeout(ctx.gate.max_seconds):
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
    except TimeoutError:
        outcome = "timeout"
        await _error(response, f"analysis stopped at the {ctx.gate.max_seconds:.0f} s limit")
    except ModerationError as exc:
        outcome = "failed"
        await _error(response, f"analysis failed: {exc}")
    finally:
        await _close(stream)
        ctx.metrics.analyses.labels(outcome).inc()
        log.info("review.analysis", item_id=item_id, outcome=outcome, chars=chars)


async def _error(response: web.StreamResponse, message: str) -> None:
    with contextlib.suppress(ConnectionError):
        await response.write(sse("error", {"message": message}))
