"""The command line: ``python -m pmlv_utils.serving --model_dir DIR [--host] [--port] ...``.

Binds 127.0.0.1 unless told otherwise; on Vertex, ``AIP_STORAGE_URI``, ``AIP_HTTP_PORT``,
``AIP_PREDICT_ROUTE`` and ``AIP_HEALTH_ROUTE`` are honoured when set.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

import uvicorn

from .app import create_app
from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE
from .requests import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INSTANCES
from .service import DEFAULT_MODEL_NAME

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
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
    ap.add_argument("--log_level", default="warning")
    ap.add_argument("--access_log", action="store_true")
    args = ap.parse_args(argv)
    if not args.model_dir:
        ap.error("--model_dir is required")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    extra = [env_route for env_route in (os.environ.get("AIP_PREDICT_ROUTE"),) if env_route]
    health = [env_route for env_route in (os.environ.get("AIP_HEALTH_ROUTE"),) if env_route]
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
    )
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log
    )
