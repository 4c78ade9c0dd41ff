"""The FastAPI app: :func:`create_app` wires a :class:`PredictionService` and a
:class:`MicroBatcher` to the routes (:class:`Routes`) and answers every error as JSON.

Routes (``flowers`` is the model name): ``GET /v1/models/flowers`` (status),
``POST /v1/models/flowers:predict`` and ``POST /v1/models/flowers:explain``; optional extra
predict and health routes (Vertex's ``AIP_PREDICT_ROUTE`` / ``AIP_HEALTH_ROUTE``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Sequence

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE, MicroBatcher
from .requests import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INSTANCES,
    RequestError,
    parse_json,
    read_body,
)
from .service import DEFAULT_MODEL_NAME, PredictionService


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def json_response(obj) -> Response:
    return Response(json.dumps(obj), media_type="application/json")


def add_error_handlers(app: FastAPI) -> None:
    """Client errors -> their 4xx ``{"error": ...}``; a bug of ours -> 500; the server stays up."""

    @app.exception_handler(RequestError)
    async def _request_error(request, err: RequestError):
        return error_response(err.status, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, err):
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def _server_error(request, err):
        return error_response(500, f"internal error: {type(err).__name__}")


class Routes:
    """Plain Starlette endpoints (request in, Response out): we parse the body, with limits."""

    def __init__(self, model: PredictionService, batcher: MicroBatcher, max_body_bytes: int):
        self.model, self.batcher, self.max_body_bytes = model, batcher, max_body_bytes

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        yield
        self.batcher.close()

    async def status(self, request):
        stats = {"model_calls": self.batcher.calls, "instances": self.batcher.instances}
        return json_response({**self.model.metadata(), "batching": stats})

    async def predict(self, request):
        with self.batcher.tracking():
            body = parse_json(await read_body(request, self.max_body_bytes))
            parsed = self.model.parse(body)
        outputs = await self.batcher.submit(parsed.signature, parsed.inputs, parsed.n)
        return json_response({"predictions": self.model.rows(parsed, outputs)})

    async def explain(self, request):
        body = parse_json(await read_body(request, self.max_body_bytes))
        return json_response(await run_in_threadpool(self.model.explain, body))

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
) -> FastAPI:
    """The ASGI app: loads the model (and warms it up) before it is returned."""
    model = PredictionService(model_dir, model_name, allowed_roots, max_instances)
    if warm_up:
        model.warm_up()
    routes = Routes(model, MicroBatcher(model, max_batch_size, batch_wait_ms), max_body_bytes)
    app = FastAPI(
        title=f"{model_name} model server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=routes.lifespan,
    )
    app.state.model, app.state.batcher = model, routes.batcher
    add_error_handlers(app)
    routes.add_to(app, f"/v1/models/{model_name}", extra_predict_routes, health_routes)
    return app
