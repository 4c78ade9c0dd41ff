"""The command line: ``python -m pmlv_utils.serving --model_dir DIR [--host] [--port] ...``.

Binds 127.0.0.1 unless told otherwise; on Vertex, ``AIP_STORAGE_URI``, ``AIP_HTTP_PORT``,
``AIP_PREDICT_ROUTE`` and ``AIP_HEALTH_ROUTE`` are honoured when set.

Requests must name an allowed Host (127.0.0.1, localhost, [::1] by default; ``--allowed_host``
adds one, ``--allowed_host '*'`` allows any: in a container behind a platform's front end;
on Vertex, where ``AIP_HTTP_PORT`` is set, any host is allowed unless ``--allowed_host`` is
given). SIGTERM stops the server within a few seconds, even during an explanation.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

import uvicorn

from .app import RouteLimits, create_app
from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE
from .explaining import DEFAULT_EXPLAIN_TIMEOUT_S, DEFAULT_MAX_PENDING_EXPLANATIONS
from .guards import ANY_HOST, DEFAULT_MAX_CONCURRENT, LOOPBACK_HOSTS
from .inputs import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_REQUEST_PIXELS,
    DEFAULT_READ_TIMEOUT_S,
    Limits,
)
from .requests import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_JSON_VALUES,
)
from .service import DEFAULT_MODEL_NAME

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
GRACEFUL_SHUTDOWN_S = 2  # open requests get this long after SIGTERM, then are cancelled
DESCRIPTION = (
    "A small REST model server for the exported flowers model (TF-Serving / KServe v1 / Vertex "
    "style)."
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    ap = argparse.ArgumentParser(prog="python -m pmlv_utils.serving", description=DESCRIPTION)
    ap.add_argument(
        "--model_dir",
        default=env.get("AIP_STORAGE_URI"),
        help="exported SavedModel folder (default: $AIP_STORAGE_URI on Vertex)",
    )
    ap.add_argument("--model_name", default=DEFAULT_MODEL_NAME)
    ap.add_argument(
        "--host", default=DEFAULT_HOST, help="127.0.0.1 by default; 0.0.0.0 only inside a container"
    )
    ap.add_argument("--port", type=int, default=int(env.get("AIP_HTTP_PORT", DEFAULT_PORT)))
    ap.add_argument(
        "--allowed_root",
        action="append",
        default=[],
        help="folder (or gs:// prefix) requests may read files from; repeatable",
    )
    ap.add_argument("--max_instances", type=int, default=DEFAULT_MAX_INSTANCES)
    ap.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    ap.add_argument("--max_batch_size", type=int, default=DEFAULT_MAX_BATCH_SIZE)
    ap.add_argument(
        "--batch_wait_ms",
        type=float,
        default=DEFAULT_BATCH_WAIT_MS,
        help="how long the model thread waits for requests already in progress (0: never)",
    )
    add_limit_args(ap)
    ap.add_argument("--log_level", default="warning")
    ap.add_argument("--access_log", action="store_true")
    args = ap.parse_args(argv)
    if not args.model_dir:
        ap.error("--model_dir is required")
    if not args.allowed_host:
        args.allowed_host = [ANY_HOST] if env.get("AIP_HTTP_PORT") else list(LOOPBACK_HOSTS)
    return args


def add_limit_args(ap: argparse.ArgumentParser) -> None:
    """The flags of what one request may cost, and who may send it."""
    ap.add_argument(
        "--allowed_host",
        action="append",
        default=[],
        help="a Host header name requests may carry (repeatable; '*': any). "
        "Default: 127.0.0.1, localhost, [::1]",
    )
    ap.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS, help="per image")
    ap.add_argument("--max_request_pixels", type=int, default=DEFAULT_MAX_REQUEST_PIXELS)
    ap.add_argument("--max_file_bytes", type=int, default=DEFAULT_MAX_FILE_BYTES)
    ap.add_argument("--read_timeout_s", type=float, default=DEFAULT_READ_TIMEOUT_S)
    ap.add_argument("--body_timeout_s", type=float, default=DEFAULT_BODY_TIMEOUT_S)
    ap.add_argument(
        "--max_json_values",
        type=int,
        default=None,
        help=f"JSON values in one body (default: {DEFAULT_MAX_JSON_VALUES:,}, or enough for "
        "four explain baselines at the model's image size)",
    )
    ap.add_argument("--max_concurrent", type=int, default=DEFAULT_MAX_CONCURRENT)
    ap.add_argument("--explain_timeout_s", type=float, default=DEFAULT_EXPLAIN_TIMEOUT_S)
    ap.add_argument(
        "--max_pending_explanations", type=int, default=DEFAULT_MAX_PENDING_EXPLANATIONS
    )


def limits_of(args: argparse.Namespace) -> tuple[Limits, RouteLimits]:
    limits = Limits(
        args.max_pixels, args.max_request_pixels, args.max_file_bytes, args.read_timeout_s
    )
    route_limits = RouteLimits(
        max_body_bytes=args.max_body_bytes,
        body_timeout_s=args.body_timeout_s,
        max_json_values=args.max_json_values,
        max_concurrent=args.max_concurrent,
        explain_timeout_s=args.explain_timeout_s,
        max_pending_explanations=args.max_pending_explanations,
        allowed_hosts=tuple(args.allowed_host),
    )
    return limits, route_limits


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    extra = [env_route for env_route in (os.environ.get("AIP_PREDICT_ROUTE"),) if env_route]
    health = [env_route for env_route in (os.environ.get("AIP_HEALTH_ROUTE"),) if env_route]
    limits, route_limits = limits_of(args)
    app = create_app(
        args.model_dir,
        args.model_name,
        args.allowed_root,
        args.max_instances,
        args.max_body_bytes,
        args.max_batch_size,
        args.batch_wait_ms,
        extra_predict_routes=extra,
        health_routes=health,
        limits=limits,
        route_limits=route_limits,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        limit_concurrency=args.max_concurrent + 64,  # beyond ours: uvicorn's own 503
        timeout_keep_alive=5,
    )
