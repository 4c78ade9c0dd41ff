"""A small REST model server for the exported flowers model (TF-Serving / KServe v1 / Vertex style).

Start it from a shell (binds 127.0.0.1 unless told otherwise)::

    python -m pmlv_utils.serving --model_dir EXPORT_DIR --allowed_root DATA_DIR [--port 8080]

or from a notebook / test::

    server = serving.start_server(export_dir, allowed_roots=[data_dir])  # free port, waits
    server.predict(["daisy/1.jpg"])  # -> list of prediction rows
    server.stop()

Routes (``flowers`` is ``--model_name``):

- ``GET  /v1/models/flowers``          -> ready, labels, the signatures it serves (inputs/outputs)
- ``POST /v1/models/flowers:predict``  -> ``{"instances": [...], "signature_name": optional}``
  Each instance is a file name string, ``{"filenames": "..."}``, ``{"img_bytes": {"b64": "..."}}``,
  ``{"b64": "..."}``, ``{"filenames": "...", "key": 7}`` (passthrough), ... Without
  ``signature_name`` the signature is the one whose inputs match the instance's fields.
  Returns ``{"predictions": [{...plain JSON...}, ...]}``.
- ``POST /v1/models/flowers:explain``  -> the same instances (+ ``"parameters": {"method": "ig",
  "steps": 25, "target_classes": [...]}``); returns Vertex-like ``explanations`` with a base64 PNG
  of each attribution map, its ``approximationError`` and the raw map (shape + base64 float32).

Safety: a file name is read only if it resolves (symlinks, ``..``) inside an ``--allowed_root``;
other URL schemes are refused (``gs://`` only under an allowed ``gs://`` root). A file is
opened once, must be a regular file under a size cap, and the bytes read are the bytes the
model decodes; every image's header is checked against a pixel budget first (no
decompression bombs). Requests must be JSON (415 otherwise), name an allowed Host (421), send
their body in time (408), and find a free slot (429); ``:explain`` options are bounded and
each explanation has a time budget. Every bad request gets a 4xx JSON ``{"error": ...}``;
the server stays up. Nothing from the wire is unpickled. Concurrent requests are batched:
while the model runs one batch, new requests queue up and are run together as the next batch
(requests of big images on a lane of their own).

In a container (KServe custom predictor, Vertex custom container) run the same module with
``--host 0.0.0.0``; ``AIP_HTTP_PORT``, ``AIP_PREDICT_ROUTE``, ``AIP_HEALTH_ROUTE`` and
``AIP_STORAGE_URI`` (Vertex's environment) are honoured when set.

Submodules:

    paths      -> PathPolicy: which files (local folders, gs:// prefixes) a request may read
    requests   -> the body (size, time), strict JSON and types, validation into a ParsedRequest
    inputs     -> ImageLoader: files opened once (fstat, size cap), pixel budget, checked bytes
    service    -> PredictionService: metadata, running signatures (TF errors -> 4xx), :explain
    explaining -> explain option bounds, time budget, ExplainQueue (429 when busy), Explainer
    batching   -> MicroBatcher: concurrent requests merged into one model call, pixel-capped
    guards     -> HostGuard (Host allowlist, 421), Admission (concurrency limit, 429)
    workers    -> DaemonExecutor (threads that never block SIGTERM), PixelBudget
    app        -> create_app: the FastAPI app, its routes and JSON error answers
    cli        -> parse_args / main: the command line (``python -m pmlv_utils.serving``, __main__)
    client     -> start_server, ServerHandle, free_port, wait_until_ready, load_test,
                  predict_jsonl, plot_load_test: using a server from a notebook, test, benchmark
    battery    -> bad_request_cases, hostile_request_cases, run_request_battery: the batteries
"""

from ..predict.rest import predict_jsonl  # one batch client: bounded retries, dead letters
from .app import create_app
from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE, MicroBatcher
from .battery import (
    BadRequest,
    bad_request_cases,
    hostile_request_cases,
    make_hostile_files,
    protocol_request_cases,
    run_request_battery,
)
from .cli import DEFAULT_HOST, DEFAULT_PORT, main, parse_args
from .client import (
    ServerHandle,
    free_port,
    load_test,
    plot_load_test,
    start_server,
    wait_until_ready,
)
from .explaining import Explainer, ExplainQueue
from .guards import Admission, HostGuard
from .inputs import ImageData, ImageLoader, Limits
from .paths import PathPolicy
from .requests import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EXPLAIN_INSTANCES,
    DEFAULT_MAX_INSTANCES,
    FILENAME_INPUTS,
    ParsedRequest,
    RequestError,
    RequestParser,
    parse_json,
    read_body,
)
from .service import DEFAULT_MODEL_NAME, PredictionService
from .workers import DaemonExecutor, PixelBudget

__all__ = [
    "DEFAULT_BATCH_WAIT_MS",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_EXPLAIN_INSTANCES",
    "DEFAULT_MAX_INSTANCES",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PORT",
    "FILENAME_INPUTS",
    "BadRequest",
    "Admission",
    "DaemonExecutor",
    "ExplainQueue",
    "Explainer",
    "HostGuard",
    "ImageData",
    "ImageLoader",
    "Limits",
    "PixelBudget",
    "MicroBatcher",
    "ParsedRequest",
    "PathPolicy",
    "PredictionService",
    "RequestError",
    "RequestParser",
    "ServerHandle",
    "bad_request_cases",
    "hostile_request_cases",
    "make_hostile_files",
    "protocol_request_cases",
    "create_app",
    "free_port",
    "load_test",
    "main",
    "parse_args",
    "parse_json",
    "plot_load_test",
    "predict_jsonl",
    "read_body",
    "run_request_battery",
    "start_server",
    "wait_until_ready",
]
