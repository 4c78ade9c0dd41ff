"""The FastAPI app: :func:`create_app` wires a :class:`PredictionService` and two
:class:`MicroBatcher` lanes to the routes (:class:`Routes`) and answers every error as JSON.

Routes (``flowers`` is the model name): ``GET /v1/models/flowers`` (status),
``POST /v1/models/flowers:predict`` and ``POST /v1/models/flowers:explain``; optional extra
predict and health routes (Vertex's ``AIP_PREDICT_ROUTE`` / ``AIP_HEALTH_ROUTE``).

Every POST: Host allowed (421), Content-Type JSON (415), a free slot (429 + Retry-After), the
body within its size (413) and time (408) limits; then parsing, validation, path checks and
file reads run on worker threads (the event loop keeps answering health checks), small
requests on the model lane, requests of big images on the large lane, explanations on the
explainer thread (429 when busy). Responses are strict JSON (no NaN / Infinity).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE, MicroBatcher
from .explaining import DEFAULT_EXPLAIN_TIMEOUT_S, DEFAULT_MAX_PENDING_EXPLANATIONS, ExplainQueue
from .guards import DEFAULT_MAX_CONCURRENT, LOOPBACK_HOSTS, Admission, HostGuard
from .inputs import Limits
from .requests import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_JSON_VALUES,
    RequestError,
    check_content_type,
    parse_json,
    read_body,
)
from .service import DEFAULT_MODEL_NAME, PredictionService
from .workers import DaemonExecutor

SMALL_REQUEST_PIXELS = 4_000_000  # up to this many pixels in a request: the model lane
SMALL_BATCH_PIXELS = 16_000_000


@dataclass(frozen=True)
class RouteLimits:
    """The limits the routes enforce before and around the model."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_json_values: int | None = None  # None: json_value_budget(the model's image size)
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    explain_timeout_s: float = DEFAULT_EXPLAIN_TIMEOUT_S
    max_pending_explanations: int = DEFAULT_MAX_PENDING_EXPLANATIONS
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS


def json_value_budget(img_size: int | None, baselines: int = 4) -> int:
    """JSON values a request may hold: 200,000, or enough for ``baselines`` explain baseline
    images [H, W, 3] of the model's size (each value and list counts)."""
    side = int(img_size or 0)
    per_image = side * side * 3 + side * side + side + 1
    return max(DEFAULT_MAX_JSON_VALUES, baselines * per_image + 10_000)


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def json_response(obj: Any) -> Response:
    """Strict JSON; a non-finite number (a model fault: inputs are checked) -> a 500 saying so."""
    try:
        text = json.dumps(obj, allow_nan=False)
    except ValueError:
        return error_response(
            500, "the model produced a value that is not a finite number (NaN or Infinity)"
        )
    return Response(text, media_type="application/json")


def add_error_handlers(app: FastAPI) -> None:
    """Client errors -> their 4xx ``{"error": ...}``; a bug of ours -> 500; the server stays up."""

    @app.exception_handler(RequestError)
    async def _request_error(request, err: RequestError):
        return error_response(err.status, err.message, err.headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, err):
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def _server_error(request, err):
        return error_response(500, f"internal error: {type(err).__name__}")


class Routes:
    """Plain Starlette endpoints (request in, Response out): we parse the body, with limits."""

    def __init__(self, model: PredictionService, lanes: dict[str, MicroBatcher], limits):
        self.model, self.limits = model, limits
        self.max_json_values = limits.max_json_values or json_value_budget(model.model.img_size)
        self.batcher, self.large = lanes["model"], lanes["large"]
        self.pool = DaemonExecutor(4, "request")
        self.admission = Admission(limits.max_concurrent)
        self.explains = ExplainQueue(limits.explain_timeout_s, limits.max_pending_explanations)

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        yield
        self.explains.close()
        for closable in (self.batcher, self.large, self.pool, self.model):
            closable.close()

    async def status(self, request):
        lanes = (self.batcher, self.large)
        stats = {
            "model_calls": sum(b.calls for b in lanes),
            "instances": sum(b.instances for b in lanes),
            "large_calls": self.large.calls,
            "in_progress": self.admission.active,
            "refused_busy": self.admission.refused,
        }
        return json_response({**self.model.metadata(), "batching": stats})

    async def _body(self, request) -> bytes:
        check_content_type(request.headers.get("content-type"))
        return await read_body(request, self.limits.max_body_bytes, self.limits.body_timeout_s)

    def _parse_predict(self, raw: bytes):
        parsed = self.model.parse(parse_json(raw, self.max_json_values))
        return parsed, self.model.load(parsed)

    def _parse_explain(self, raw: bytes):
        return self.model.prepare_explain(parse_json(raw, self.max_json_values))

    async def predict(self, request):
        with self.admission.admit():
            with self.batcher.tracking():
                raw = await self._body(request)
                parsed, pixels = await self.pool.run(self._parse_predict, raw)
            small = sum(pixels) <= SMALL_REQUEST_PIXELS
            lane = self.batcher if small else self.large
            outputs = await lane.submit(parsed.signature, parsed.inputs, parsed.n, pixels)
            return json_response({"predictions": self.model.rows(parsed, outputs)})

    async def explain(self, request):
        with self.admission.admit():
            with self.explains.slot() as budget:
                raw = await self._body(request)
                args = await self.pool.run(self._parse_explain, raw)
                result = await self.explains.run(self.model.explain, *args, budget=budget)
            return await self.pool.run(json_response, result)

    async def health(self, request):
        return json_response({"ready": True})

    def add_to(
        self, app: FastAPI, base: str, extra_predict: Sequence[str], health: Sequence[str]
    ) -> None:
        app.add_route(base, self.status, methods=["GET"])
        app.add_route(f"{base}:predict", self.predict, methods=["POST"])
        app.add_route(f"{base}:explain", self.explain, methods=["POST"])
        for route in extra_predict:
            app.add_route(route, self.predict, methods=["POST"])
        for route in health:
            app.add_route(route, self.health, methods=["GET"])


def make_lanes(model: PredictionService, max_batch_size: int, batch_wait_ms: float) -> dict:
    """The model lane (small requests, merged) and the large lane (big images, one request
    at a time in slices of at most one image budget, holding the shared pixel budget)."""
    return {
        "model": MicroBatcher(
            model, max_batch_size, batch_wait_ms, max_batch_pixels=SMALL_BATCH_PIXELS
        ),
        "large": MicroBatcher(
            model,
            1,
            0.0,
            max_batch_pixels=model.loader.limits.max_pixels,
            budget=model.decode_budget,
            name="model-large",
        ),
    }


def create_app(
    model_dir: str,
    model_name: str = DEFAULT_MODEL_NAME,
    allowed_roots: Sequence[str] = (),
    max_instances: int = DEFAULT_MAX_INSTANCES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    warm_up: bool = True,
    extra_predict_routes: Sequence[str] = (),
    health_routes: Sequence[str] = (),
    *,
    limits: Limits = Limits(),
    route_limits: RouteLimits | None = None,
) -> FastAPI:
    """The ASGI app (behind the Host allowlist): loads the model (and warms it up) before it
    is returned."""
    route_limits = route_limits or RouteLimits(max_body_bytes=max_body_bytes)
    model = PredictionService(model_dir, model_name, allowed_roots, max_instances, limits=limits)
    if warm_up:
        model.warm_up()
    routes = Routes(model, make_lanes(model, max_batch_size, batch_wait_ms), route_limits)
    app = FastAPI(
        title=f"{model_name} model server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=routes.lifespan,
    )
    app.state.model, app.state.batcher, app.state.routes = model, routes.batcher, routes
    add_error_handlers(app)
    routes.add_to(app, f"/v1/models/{model_name}", extra_predict_routes, health_routes)
    app.add_middleware(HostGuard, allowed_hosts=route_limits.allowed_hosts)
    return app
