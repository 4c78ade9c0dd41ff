"""The FastAPI app: :func:`create_app` wires a :class:`PredictionService` and two
:class:`MicroBatcher` lanes to the routes and answers every error as JSON ``{"error": ...}``.

:class:`Routes`, TF Serving's REST API (``flowers`` is the model name, ``[/versions/1]`` optional):
``GET /v1/models/flowers`` (status), ``GET .../metadata`` (signature_def map),
``POST .../flowers:predict`` (rows or columns) and ``POST .../flowers:explain``; optional extra
predict and health routes (Vertex's ``AIP_PREDICT_ROUTE`` / ``AIP_HEALTH_ROUTE``).
:class:`OipRoutes`, KServe v2 / Open Inference Protocol: ``GET /v2``, ``/v2/health/live``,
``/v2/health/ready``, ``/v2/models/flowers[/versions/1]`` (metadata), ``.../ready`` and
``POST .../infer`` (JSON or the binary tensor extension).

Every POST: Host allowed (421), Content-Type JSON (415; the v2 infer route also takes
``application/octet-stream`` and the binary extension, :func:`oip.check_headers`), a free slot
(429 + Retry-After), the body within its size (413) and time (408) limits; then parsing,
validation, path checks and file reads run on worker threads (the event loop keeps answering
health checks), small requests on the model lane, requests of big images on the large lane,
explanations on the explainer thread (429 when busy). Responses are strict JSON (no NaN /
Infinity).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import predict
from . import oip, oip_tensors, tfserving
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


def check_json_headers(headers) -> None:
    """The JSON routes' rule: Content-Type ``application/json`` (415 otherwise)."""
    check_content_type(headers.get("content-type"))


class Routes:
    """TF Serving's REST routes as plain Starlette endpoints (we parse the body, with limits)."""

    def __init__(self, model: PredictionService, lanes: dict[str, MicroBatcher], limits):
        self.model, self.limits = model, limits
        self.max_json_values = limits.max_json_values or json_value_budget(model.model.img_size)
        self.batcher, self.large = lanes["model"], lanes["large"]
        self.pool = DaemonExecutor(4, "request")
        self.admission = Admission(limits.max_concurrent)
        self.explains = ExplainQueue(limits.explain_timeout_s, limits.max_pending_explanations)
        self.signature_defs = tfserving.read_signature_defs(model.model_dir, model.served)

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        yield
        self.explains.close()
        for closable in (self.batcher, self.large, self.pool, self.model):
            closable.close()

    def check_version(self, request) -> None:
        tfserving.check_version(self.model.name, request.path_params.get("version"))

    async def status(self, request):
        self.check_version(request)
        lanes = (self.batcher, self.large)
        stats = {
            "model_calls": sum(b.calls for b in lanes),
            "instances": sum(b.instances for b in lanes),
            "large_calls": self.large.calls,
            "in_progress": self.admission.active,
            "refused_busy": self.admission.refused,
        }
        return json_response({**self.model.metadata(), "batching": stats})

    async def metadata(self, request):
        self.check_version(request)
        return json_response(tfserving.metadata_body(self.model.name, self.signature_defs))

    async def run_predict(
        self, request, check_headers: Callable, parse: Callable, answer: Callable
    ) -> Response:
        """A prediction request of any protocol: admission, the headers (``check_headers``),
        the body, ``parse(raw, headers)`` -> ``(parsed, pixels, extra)`` on a worker thread,
        the model on its lane, then ``answer(parsed, outputs, extra)``."""
        with self.admission.admit():
            with self.batcher.tracking():
                check_headers(request.headers)
                raw = await read_body(
                    request, self.limits.max_body_bytes, self.limits.body_timeout_s
                )
                parsed, pixels, extra = await self.pool.run(parse, raw, request.headers)
            small = sum(pixels) <= SMALL_REQUEST_PIXELS
            lane = self.batcher if small else self.large
            outputs = await lane.submit(parsed.signature, parsed.inputs, parsed.n, pixels)
            return answer(parsed, outputs, extra)

    def _parse_predict(self, raw: bytes, headers):
        parsed = self.model.parse_predict(parse_json(raw, self.max_json_values))
        return parsed, self.model.load(parsed), None

    def _answer(self, parsed, outputs, extra) -> Response:
        return json_response(self.model.answer(parsed, outputs))

    async def predict(self, request):
        self.check_version(request)
        return await self.run_predict(
            request, check_json_headers, self._parse_predict, self._answer
        )

    def _parse_explain(self, raw: bytes):
        return self.model.prepare_explain(parse_json(raw, self.max_json_values))

    async def explain(self, request):
        self.check_version(request)
        with self.admission.admit():
            with self.explains.slot() as budget:
                check_json_headers(request.headers)
                raw = await read_body(
                    request, self.limits.max_body_bytes, self.limits.body_timeout_s
                )
                args = await self.pool.run(self._parse_explain, raw)
                result = await self.explains.run(self.model.explain, *args, budget=budget)
            return await self.pool.run(json_response, result)

    async def health(self, request):
        return json_response({"ready": True})

    def add_to(
        self, app: FastAPI, base: str, extra_predict: Sequence[str], health: Sequence[str]
    ) -> None:
        for prefix in (base, f"{base}/versions/{{version:int}}"):
            app.add_route(prefix, self.status, methods=["GET"])
            app.add_route(f"{prefix}/metadata", self.metadata, methods=["GET"])
            app.add_route(f"{prefix}:predict", self.predict, methods=["POST"])
            app.add_route(f"{prefix}:explain", self.explain, methods=["POST"])
        for route in extra_predict:
            app.add_route(route, self.predict, methods=["POST"])
        for route in health:
            app.add_route(route, self.health, methods=["GET"])


class OipRoutes:
    """KServe v2 / Open Inference Protocol routes, on the same guards, lanes and checks as
    :class:`Routes` (the request is turned into rows: :func:`oip_tensors.columnar_body`)."""

    def __init__(self, routes: Routes):
        self.routes, self.model = routes, routes.model
        self.name, self.version = routes.model.name, tfserving.MODEL_VERSION
        served = self.model.served
        default = predict_signature(served)
        self.metadata = oip_tensors.model_metadata(
            self.name,
            self.version,
            self.model.model.input_specs(default),
            self.model.model.output_specs(default),
        )

    def check_model(self, request) -> None:
        name, version = request.path_params["model_name"], request.path_params.get("version")
        if name != self.name:
            raise RequestError(
                404, f"model {name[:60]!r} is not served here; this server serves {self.name!r}"
            )
        if version is not None and version != self.version:
            raise RequestError(
                404, f"model {name!r} has no version {version[:20]!r}; it serves {self.version!r}"
            )

    async def server_metadata(self, request):
        return json_response(oip_tensors.server_metadata("pmlv_utils.serving", self.version))

    async def live(self, request):
        return json_response({"live": True})

    async def ready(self, request):
        return json_response({"ready": True})

    async def model_metadata(self, request):
        self.check_model(request)
        return json_response(self.metadata)

    async def model_ready(self, request):
        self.check_model(request)
        return json_response({"name": self.name, "ready": True})

    async def infer(self, request):
        self.check_model(request)
        return await self.routes.run_predict(request, oip.check_headers, self._parse, self._answer)

    def _parse(self, raw: bytes, headers):
        budget = self.routes.max_json_values
        infer = oip.parse_infer(raw, headers.get(oip.HEADER), budget, budget)
        body = oip_tensors.columnar_body(infer, self.model.parser)
        oip_tensors.check_outputs(
            infer, list(self.model.model.output_specs(body["signature_name"]))
        )
        parsed = self.model.parse_predict(body)
        return parsed, self.model.load(parsed), infer

    def _answer(self, parsed, outputs, infer) -> Response:
        outputs = oip_tensors.with_client_names(outputs, parsed.client_names)
        try:
            body, headers, media_type = oip.encode_response(self.name, self.version, infer, outputs)
        except oip.OutputError as err:
            return error_response(500, str(err))
        return Response(body, media_type=media_type, headers=headers)

    def add_to(self, app: FastAPI) -> None:
        app.add_route("/v2", self.server_metadata, methods=["GET"])
        app.add_route("/v2/health/live", self.live, methods=["GET"])
        app.add_route("/v2/health/ready", self.ready, methods=["GET"])
        for model in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{version}"):
            app.add_route(model, self.model_metadata, methods=["GET"])
            app.add_route(f"{model}/ready", self.model_ready, methods=["GET"])
            app.add_route(f"{model}/infer", self.infer, methods=["POST"])


def predict_signature(served: dict) -> str:
    """The signature a protocol without signature names describes: the default one if served."""
    return predict.DEFAULT_SIGNATURE if predict.DEFAULT_SIGNATURE in served else sorted(served)[0]


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
    OipRoutes(routes).add_to(app)
    app.add_middleware(HostGuard, allowed_hosts=route_limits.allowed_hosts)
    return app
