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
other URL schemes are refused (``gs://`` only under an allowed ``gs://`` root). Every bad
request gets a 4xx JSON ``{"error": ...}``; the server stays up. Nothing from the wire is
unpickled. Concurrent requests are batched: while the model runs one batch, new requests
queue up and are run together as the next batch.

In a container (KServe custom predictor, Vertex custom container) run the same module with
``--host 0.0.0.0``; ``AIP_HTTP_PORT``, ``AIP_PREDICT_ROUTE``, ``AIP_HEALTH_ROUTE`` and
``AIP_STORAGE_URI`` (Vertex's environment) are honoured when set.

Submodules:

    paths     -> PathPolicy: which files (local folders, gs:// prefixes) a request may read
    requests  -> reading the body (size limit), JSON, validation into a ParsedRequest; RequestError
    service   -> PredictionService: metadata, running signatures, :explain (Explainer, row formats)
    batching  -> MicroBatcher: concurrent requests merged into one model call on one thread
    app       -> create_app: the FastAPI app, its routes and JSON error answers
    cli       -> parse_args / main: the command line (``python -m pmlv_utils.serving``, __main__)
    client    -> start_server, ServerHandle, free_port, wait_until_ready, load_test, predict_jsonl,
                 plot_load_test: using a server from a notebook, a test or a benchmark
    battery   -> BadRequest, bad_request_cases, run_request_battery: the hostile-request battery
"""

from .app import create_app
from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE, MicroBatcher
from .battery import BadRequest, bad_request_cases, run_request_battery
from .cli import DEFAULT_HOST, DEFAULT_PORT, main, parse_args
from .client import (
    ServerHandle,
    free_port,
    load_test,
    plot_load_test,
    predict_jsonl,
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
