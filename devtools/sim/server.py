"""The Anthropic API SIMULATOR: an aiohttp server the real ``anthropic`` SDK talks to.

Not the Anthropic API and not a model: verdicts come from rule ``sim-lexicon-v1``
(:mod:`devtools.sim.rules`). Every response carries ``x-modstream-simulator: 1``.

Endpoints: ``POST /v1/messages`` (JSON or ``stream: true`` SSE), ``POST /v1/messages/batches``,
``GET /v1/messages/batches`` (``limit``, ``after_id``, ``before_id``),
``GET /v1/messages/batches/{id}``, ``GET /v1/messages/batches/{id}/results`` (JSONL),
``POST /v1/messages/batches/{id}/cancel``; admin ``GET``/``POST /_sim/config``,
``POST /_sim/script`` (faults for the next requests, in order), ``POST /_sim/reset``;
``GET /healthz`` and ``GET /metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from devtools.sim.batches import Batch, BatchStore
from devtools.sim.cache import PromptCache
from devtools.sim.faults import Fault, FaultDraw, SimConfig
from devtools.sim.messages import (
    SimRequestError,
    build_message,
    error_body,
    new_id,
    parse_request,
    stream_events,
)
from pipeline.frontier.provenance import SIMULATOR_HEADER
from pipeline.log import get_logger

SIM_HEADER = SIMULATOR_HEADER
FAULT_HEADER = "x-sim-fault"
LATENCY_HEADER = "x-sim-latency-ms"
BANNER = (
    "*** modstream frontier SIMULATOR - this is NOT the Anthropic API; verdicts come from "
    "the keyword rule sim-lexicon-v1, never from a model ***"
)

log = get_logger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ERRORS: dict[Fault, tuple[int, str, str]] = {
    Fault.RATE_LIMIT: (429, "rate_limit_error", "Simulated rate limit: slow down."),
    Fault.OVERLOADED: (529, "overloaded_error", "Simulated overload."),
    Fault.SERVER_ERROR: (500, "api_error", "Simulated internal server error."),
}


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "modstream_sim_requests",
            "Simulator requests by endpoint and injected fault.",
            ["endpoint", "fault"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modstream_sim_latency_seconds",
            "Injected latency before answering.",
            ["endpoint"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 30),
            registry=self.registry,
        )
        self.batches = Gauge(
            "modstream_sim_batches_in_progress", "Batches not yet ended.", registry=self.registry
        )


class Simulator:
    """State and handlers of one simulator instance."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._draw = FaultDraw(config.seed)
        self._cache = PromptCache()
        self._metrics = _Metrics()
        self._script: list[Fault] = []
        self._batches = BatchStore(lambda: self.config, self._draw, self._cache, time.monotonic)

    # --- app -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024**2)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/batches", self._batch_create)
        app.router.add_get("/v1/messages/batches", self._batch_list)
        app.router.add_get("/v1/messages/batches/{id}", self._batch_get)
        app.router.add_get("/v1/messages/batches/{id}/results", self._batch_results)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self._batch_cancel)
        app.router.add_get("/_sim/config", self._config_get)
        app.router.add_post("/_sim/config", self._config_set)
        app.router.add_post("/_sim/script", self._script_set)
        app.router.add_post("/_sim/reset", self._reset)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/metrics", self._prometheus)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        await self._batches.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        request_id = new_id("req")
        if request.path.startswith("/v1/") and not (
            request.headers.get("x-api-key") or request.headers.get("authorization")
        ):
            response: web.StreamResponse = _error(
                401, "authentication_error", "x-api-key header is required", request_id
            )
        else:
            try:
                response = await handler(request)
            except SimRequestError as exc:
                response = _error(exc.status, exc.error_type, exc.message, request_id)
        if not response.prepared:
            response.headers[SIM_HEADER] = "1"
            response.headers["request-id"] = request_id
        return response

    # --- messages ------------------------------------------------------------------------
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        req = parse_request(await _json(request))
        config = self.config
        forced = _forced_fault(request)
        if forced is None and self._script:
            forced = self._script.pop(0).value
        fault = self._draw.fault(config, forced)
        delay = self._draw.latency(config, fault, request.headers.get(LATENCY_HEADER))
        self._metrics.requests.labels("messages", fault.value).inc()
        self._metrics.latency.labels("messages").observe(delay)
        if fault is Fault.HANG:
            await asyncio.sleep(config.hang_s)
            return _error(529, "overloaded_error", "Simulated hang ended.")
        if fault in _ERRORS:
            await asyncio.sleep(delay)
            status, kind, text = _ERRORS[fault]
            response = _error(status, kind, text)
            if fault is Fault.RATE_LIMIT:
                response.headers["retry-after"] = f"{config.retry_after_s:g}"
            return response
        now = time.monotonic()
        message = build_message(req, fault, {})
        delay += message["usage"]["output_tokens"] * config.output_token_latency_s
        message["usage"] = {
            **self._cache.usage(req, config, now=now, ready_at=now + delay),
            "output_tokens": message["usage"]["output_tokens"],
        }
        if req.stream:
            return await self._stream(request, message, delay, fault)
        await asyncio.sleep(delay)
        return web.json_response(message)

    async def _stream(
        self, request: web.Request, message: dict[str, Any], delay: float, fault: Fault
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                SIM_HEADER: "1",
            }
        )
        await asyncio.sleep(delay)
        await response.prepare(request)
        events = stream_events(message)
        for n, (event, data) in enumerate(events):
            if fault is Fault.STREAM_ERROR and n == len(events) // 2:
                error = error_body("overloaded_error", "Simulated overload mid-stream.")
                await response.write(_sse("error", error))
                break
            await response.write(_sse(event, data))
            if event == "content_block_delta" and self.config.stream_chunk_delay_s:
                await asyncio.sleep(self.config.stream_chunk_delay_s)
        await response.write_eof()
        return response

    # --- batches -------------------------------------------------------------------------
    async def _batch_create(self, request: web.Request) -> web.Response:
        batch = self._batches.create(await _json(request))
        self._metrics.requests.labels("batches_create", "none").inc()
        self._metrics.batches.inc()
        if batch.task is not None:
            batch.task.add_done_callback(lambda _t: self._metrics.batches.dec())
        return web.json_response(self._render(request, batch))

    async def _batch_get(self, request: web.Request) -> web.Response:
        return web.json_response(self._render(request, self._batches.get(request.match_info["id"])))

    async def _batch_list(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise SimRequestError(
                400, "invalid_request_error", "limit must be an integer"
            ) from None
        page = self._batches.page(
            limit=limit, after_id=query.get("after_id"), before_id=query.get("before_id")
        )
        page["data"] = [self._render(request, b) for b in page["data"]]
        return web.json_response(page)

    async def _batch_cancel(self, request: web.Request) -> web.Response:
        batch = self._batches.cancel(request.match_info["id"])
        return web.json_response(self._render(request, batch))

    async def _batch_results(self, request: web.Request) -> web.Response:
        batch = self._batches.get(request.match_info["id"])
        if batch.processing_status != "ended":
            raise SimRequestError(404, "not_found_error", "batch has not ended; no results yet")
        return web.Response(body=batch.results_jsonl(), content_type="application/x-jsonl")

    def _render(self, request: web.Request, batch: Batch) -> dict[str, Any]:
        return batch.to_json(f"{request.scheme}://{request.host}")

    # --- admin ---------------------------------------------------------------------------
    async def _config_get(self, _request: web.Request) -> web.Response:
        return web.json_response(self.config.model_dump())

    async def _config_set(self, request: web.Request) -> web.Response:
        changes = await _json(request)
        if not isinstance(changes, dict):
            raise SimRequestError(400, "invalid_request_error", "expected a JSON object")
        try:
            self.config = self.config.updated(changes)
        except ValidationError as exc:
            raise SimRequestError(400, "invalid_request_error", str(exc)[:500]) from None
        if "seed" in changes:
            self._draw = FaultDraw(self.config.seed)
        log.info("sim.config_changed", fields=sorted(changes))
        return web.json_response(self.config.model_dump())

    async def _script_set(self, request: web.Request) -> web.Response:
        """Queue faults for the next ``/v1/messages`` requests, in order (then the rates apply)."""
        body = await _json(request)
        faults = body.get("faults") if isinstance(body, dict) else None
        try:
            self._script = [Fault(f) for f in faults or []]
        except ValueError:
            raise SimRequestError(
                400,
                "invalid_request_error",
                f"faults must be drawn from {[f.value for f in Fault]}",
            ) from None
        return web.json_response({"queued": [f.value for f in self._script]})

    async def _reset(self, _request: web.Request) -> web.Response:
        self._script.clear()
        self._cache.clear()
        self._batches.clear()
        return web.json_response({"reset": True})

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "simulator": True})

    async def _prometheus(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _forced_fault(request: web.Request) -> str | None:
    forced = request.headers.get(FAULT_HEADER)
    if forced and forced not in Fault.__members__.values():
        raise SimRequestError(
            400,
            "invalid_request_error",
            f"{FAULT_HEADER} must be one of {[f.value for f in Fault]}",
        )
    return forced


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise SimRequestError(400, "invalid_request_error", "body is not valid JSON") from None


def _error(status: int, kind: str, message: str, request_id: str | None = None) -> web.Response:
    return web.json_response(error_body(kind, message, request_id), status=status)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class SimulatorServer:
    """Runs a :class:`Simulator` on ``host:port`` (port 0 picks a free port)."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = Simulator(config)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        if self._runner is None or not self._runner.addresses:
            return self._port
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        # handler_cancellation: a client that gives up (deadline) cancels its hanging handler.
        self._runner = web.AppRunner(
            self.simulator.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port, backlog=1024).start()
        log.warning("sim.started", banner=BANNER, url=self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def load_config_file(path: str) -> dict[str, Any]:
    """Read a JSON object of :class:`SimConfig` fields."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of simulator settings")
    return data
