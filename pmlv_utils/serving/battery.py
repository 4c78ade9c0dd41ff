"""The bad-request battery: malformed and hostile requests, and the status each should get.

:func:`bad_request_cases` lists them (:class:`BadRequest`); :func:`run_request_battery` sends
them to a running server and checks that it answered each as expected and stayed up.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Sequence

import requests

from .. import safe_io
from .client import ServerHandle
from .requests import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INSTANCES


@dataclass
class BadRequest:
    case: str
    body: bytes
    expected: int
    method: str = "POST"
    route: str = "predict"
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


def bad_request_cases(
    inside_file: str,
    outside_file: str,
    symlink_out: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_instances: int = DEFAULT_MAX_INSTANCES,
) -> list[BadRequest]:
    """Malformed and hostile requests, with the status the server should answer.

    ``inside_file`` is a readable image under an allowed root; ``outside_file`` an image
    outside every root; ``symlink_out`` a symlink inside a root pointing outside.
    """
    inside = str(inside_file)
    return [
        *malformed_body_cases(inside),
        *file_name_cases(inside, str(outside_file), symlink_out),
        *limit_and_route_cases(inside, max_body_bytes, max_instances),
    ]


def malformed_body_cases(inside: str) -> list[BadRequest]:
    """Bodies that are not a valid request (JSON, fields, signature, base64)."""
    b64_text = base64.b64encode(b"this is not an image").decode()
    return [
        BadRequest("invalid JSON", b'{"instances": [', 400),
        BadRequest("body is a list", _json([inside]), 400),
        BadRequest("no instances", _json({"signature_name": "serving_default"}), 400),
        BadRequest("empty instances", _json({"instances": []}), 400),
        BadRequest("columnar 'inputs'", _json({"inputs": {"filenames": [inside]}}), 400),
        BadRequest("wrong field name", _json({"instances": [{"filename_typo": inside}]}), 400),
        BadRequest("number as file name", _json({"instances": [{"filenames": 42}]}), 400),
        BadRequest(
            "unknown signature",
            _json({"signature_name": "no_such_sig", "instances": [inside]}),
            400,
        ),
        BadRequest(
            "bad base64", _json({"instances": [{"img_bytes": {"b64": "@@not base64@@"}}]}), 400
        ),
        BadRequest(
            "bytes not an image", _json({"instances": [{"img_bytes": {"b64": b64_text}}]}), 400
        ),
        BadRequest("bytes without b64", _json({"instances": [{"img_bytes": "raw string"}]}), 400),
    ]


def file_name_cases(inside: str, outside: str, symlink_out: str | None) -> list[BadRequest]:
    """File names the server must not read: missing, outside the roots, other schemes, NUL."""
    up = os.path.relpath(outside, os.path.dirname(inside))
    cases = [
        BadRequest("missing file", _json({"instances": [inside + ".missing.jpg"]}), 404),
        BadRequest(
            "path traversal ../",
            _json({"instances": [os.path.join(os.path.dirname(inside), up)]}),
            403,
        ),
        BadRequest("absolute path outside", _json({"instances": [outside]}), 403),
    ]
    if symlink_out:
        cases.append(
            BadRequest("symlink out of root", _json({"instances": [str(symlink_out)]}), 403)
        )
    return cases + [
        BadRequest("system file", _json({"instances": ["/etc/passwd"]}), 403),
        BadRequest("gs:// not allowed", _json({"instances": ["gs://some-bucket/flower.jpg"]}), 403),
        BadRequest("other URL scheme", _json({"instances": ["ram://x/flower.jpg"]}), 403),
        BadRequest("NUL in file name", _json({"instances": [inside + "\u0000.jpg"]}), 400),
    ]


def limit_and_route_cases(inside: str, max_body_bytes: int, max_instances: int) -> list[BadRequest]:
    """Over the limits (instances, body size, nesting), unknown route, wrong method."""
    too_big = b'{"instances": ["' + b"a" * (max_body_bytes + 10) + b'"]}'
    return [
        BadRequest("too many instances", _json({"instances": [inside] * (max_instances + 1)}), 413),
        BadRequest("body over size limit", too_big, 413),
        BadRequest("deeply nested JSON", b"[" * 5000 + b"]" * 5000, 400),
        BadRequest("unknown route", b"{}", 404, route="/v1/models/flowers:nothing"),
        BadRequest("GET on :predict", b"", 405, method="GET"),
    ]


def run_request_battery(server: ServerHandle, cases: Sequence[BadRequest]) -> list[dict]:
    """Send each bad request; one row per case with the expected and actual status."""
    rows = []
    for case in cases:
        route = case.route
        url = {"predict": server.predict_url, "explain": server.explain_url}.get(
            route, server.url + route
        )
        try:
            resp = requests.request(
                case.method, url, data=case.body or None, headers=case.headers, timeout=60
            )
            status, message = resp.status_code, safe_io.http_error_text(resp)
        except requests.RequestException as err:
            status, message = None, f"{type(err).__name__}"
        rows.append(
            {
                "case": case.case,
                "expected": case.expected,
                "status": status,
                "ok": status == case.expected,
                "error": message,
            }
        )
    rows.append(
        {
            "case": "server still up",
            "expected": 200,
            "status": _status_of(server),
            "ok": _status_of(server) == 200,
            "error": "",
        }
    )
    return rows


def _status_of(server: ServerHandle) -> int | None:
    try:
        return requests.get(server.model_url, timeout=10).status_code
    except requests.RequestException:
        return None
