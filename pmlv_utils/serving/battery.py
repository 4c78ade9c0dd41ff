"""The bad-request battery: malformed and hostile requests, and the status each should get.

:func:`bad_request_cases` lists them (:class:`BadRequest`); :func:`run_request_battery` sends
them to a running server and checks that it answered each as expected and stayed up.
:func:`hostile_request_cases` adds the costly and tricky ones (decompression bombs, special
files made by :func:`make_hostile_files`, lone surrogates, floats as integers, NaN, other
content types, a foreign Host, internal signatures, unbounded ``:explain`` options, a body
sent too slowly); the server must refuse each with a 4xx, cheaply. :func:`protocol_request_cases`
does the same for TF Serving's columnar format and versions and the KServe v2 infer route
(JSON and the binary tensor extension).
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
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
    delay_s: float = 0.0  # send the body in small pieces spread over this many seconds


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
        BadRequest("instances and inputs", _json({"instances": [inside], "inputs": [inside]}), 400),
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
        data = _slowly(case.body, case.delay_s) if case.delay_s else case.body or None
        try:
            resp = requests.request(case.method, url, data=data, headers=case.headers, timeout=60)
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


def _slowly(body: bytes, seconds: float, pieces: int = 20):
    """The body as a generator that trickles it out over ``seconds`` (a slow client)."""
    size = max(1, len(body) // pieces)
    for start in range(0, len(body), size):
        time.sleep(seconds / pieces)
        yield body[start : start + size]


# ---- hostile inputs ---------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb(side: int = 23_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels: ~65 KB that decode to gigabytes."""
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts += [comp.compress(row * (side % 1000)), comp.flush()]
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def small_image(fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (180, 40, 90)).save(buf, fmt)
    return buf.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 header claims ``width`` x ``height``."""
    data = bytearray(small_image("JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def make_hostile_files(folder: str | os.PathLike) -> dict[str, str]:
    """Files that must not be read like images, made inside ``folder`` (an allowed root):
    ``fifo``, ``directory``, ``sparse`` (50 GB, no blocks), ``bomb`` (a PNG bomb), ``tiff``,
    and ``device`` (a character device like /dev/zero, when this process may make one)."""
    folder = Path(folder) / "hostile"
    folder.mkdir(parents=True, exist_ok=True)
    made = {"fifo": folder / "pipe.jpg", "directory": folder / "folder.jpg"}
    if not made["fifo"].exists():
        os.mkfifo(made["fifo"])
    made["directory"].mkdir(exist_ok=True)
    made["sparse"] = folder / "sparse.png"
    with open(made["sparse"], "wb") as f:
        f.write(small_image("PNG"))
        f.truncate(50 * 2**30)
    made["bomb"] = folder / "bomb.png"
    made["bomb"].write_bytes(png_bomb())
    made["tiff"] = folder / "image.tiff"
    made["tiff"].write_bytes(small_image("TIFF"))
    device = folder / "zero.jpg"
    try:
        if not device.exists():
            os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))
        made["device"] = device
    except (OSError, AttributeError):
        pass
    return {k: str(v) for k, v in made.items()}


def _b64(data: bytes) -> dict:
    return {"img_bytes": {"b64": base64.b64encode(data).decode()}}


def hostile_request_cases(
    inside_file: str, files: dict[str, str], slow_body_s: float = 0.0
) -> list[BadRequest]:
    """Costly and tricky requests (see the module docstring) with the 4xx each should get.

    ``files`` is :func:`make_hostile_files`' answer; ``slow_body_s`` (over the server's
    ``--body_timeout_s``) adds a body sent that slowly, which should get a 408.
    """
    cases = [
        *hostile_file_cases(files),
        *hostile_bytes_cases(),
        *strict_json_cases(inside_file),
        *header_cases(inside_file),
        *explain_cases(inside_file),
    ]
    if slow_body_s:
        body = _json({"instances": [inside_file]})
        cases.append(BadRequest("body sent too slowly", body, 408, delay_s=slow_body_s))
    return cases


def hostile_file_cases(files: dict[str, str]) -> list[BadRequest]:
    status = {"fifo": 400, "directory": 400, "device": 400, "sparse": 413, "bomb": 413}
    status["tiff"] = 400
    return [
        BadRequest(f"{kind} as a file name", _json({"instances": [files[kind]]}), code)
        for kind, code in status.items()
        if kind in files
    ]


def hostile_bytes_cases() -> list[BadRequest]:
    png = small_image("PNG")
    gif = small_image("GIF")
    return [
        BadRequest("PNG bomb bytes", _json({"instances": [_b64(png_bomb())]}), 413),
        BadRequest(
            "JPEG claiming 60000x60000",
            _json({"instances": [_b64(jpeg_claiming(60000, 60000))]}),
            413,
        ),
        BadRequest("TIFF bytes", _json({"instances": [_b64(small_image("TIFF"))]}), 400),
        BadRequest("truncated PNG", _json({"instances": [_b64(png[: len(png) // 2])]}), 400),
        BadRequest("PNG cut in its pixels", _json({"instances": [_b64(png[:-20])]}), 400),
        BadRequest("truncated GIF", _json({"instances": [_b64(gif[:30])]}), 400),
        BadRequest(
            "empty-ish WebP", _json({"instances": [_b64(b"RIFF\x00\x00\x00\x00WEBP")]}), 400
        ),
    ]


def strict_json_cases(inside: str) -> list[BadRequest]:
    def passthrough(key: str) -> bytes:
        text = '{"signature_name": "passthrough", "instances": [{"filenames": %s, "key": %s}]}'
        return (text % (json.dumps(inside), key)).encode()

    return [
        BadRequest("lone surrogate in a file name", b'{"instances": ["a\\ud800.jpg"]}', 400),
        BadRequest("float as an integer key", passthrough("1.5"), 400),
        BadRequest("1.0 as an integer key", passthrough("1.0"), 400),
        BadRequest("boolean as an integer key", passthrough("true"), 400),
        BadRequest("key over int64", passthrough(str(2**63)), 400),
        BadRequest("NaN in the body", passthrough("NaN"), 400),
        BadRequest("Infinity in the body", passthrough("-Infinity"), 400),
        BadRequest("1e999 in the body", passthrough("1e999"), 400),
        BadRequest("body not UTF-8", b'{"instances": ["\xff\xfe.jpg"]}', 400),
        BadRequest("a million JSON values", b'{"instances": [' + b"[]," * 10**6 + b"[]]}", 413),
        BadRequest(
            "internal signature xai_model",
            _json({"signature_name": "xai_model", "instances": [{"input_images": [[[0, 0, 0]]]}]}),
            400,
        ),
        BadRequest(
            "internal signature xai_preprocess",
            _json({"signature_name": "xai_preprocess", "instances": [inside]}),
            400,
        ),
        BadRequest("internal inputs inferred", _json({"instances": [{"input_images": [0]}]}), 400),
    ]


def header_cases(inside: str) -> list[BadRequest]:
    body = _json({"instances": [inside]})
    return [
        BadRequest("text/plain body", body, 415, headers={"Content-Type": "text/plain"}),
        BadRequest("no Content-Type", body, 415, headers={}),
        BadRequest(
            "form body", body, 415, headers={"Content-Type": "application/x-www-form-urlencoded"}
        ),
        BadRequest(
            "JSON in latin-1",
            body,
            415,
            headers={"Content-Type": "application/json; charset=latin-1"},
        ),
        BadRequest(
            "foreign Host (DNS rebinding)",
            body,
            421,
            headers={"Content-Type": "application/json", "Host": "evil.example:8080"},
        ),
        BadRequest(
            "explain as text/plain",
            body,
            415,
            route="explain",
            headers={"Content-Type": "text/plain"},
        ),
    ]


def explain_cases(inside: str) -> list[BadRequest]:
    def explain(**parameters) -> bytes:
        return _json({"instances": [inside], "parameters": parameters})

    cases = [
        ("a billion IG steps", dict(method="ig", steps=10**9)),
        ("IG steps 2.5", dict(method="ig", steps=2.5)),
        ("IG steps true", dict(method="ig", steps=True)),
        ("Gauss-Legendre order 10**6", dict(method="ig", steps=10**6, integration="gausslegendre")),
        ("unknown integration", dict(method="ig", integration="simpson")),
        ("baseline of the wrong shape", dict(method="ig", baseline=[[0.0]])),
        ("a hundred XRAI baselines", dict(method="xrai", baselines=["black"] * 100)),
        ("LIME with 10**8 samples", dict(method="lime", num_samples=10**8)),
        ("LIME batch_size 0", dict(method="lime", batch_size=0)),
        ("LIME 10**6 segments", dict(method="lime", n_segments=10**6)),
        ("KernelSHAP negative samples", dict(method="kernelshap", num_samples=-5)),
        ("anchors threshold 5", dict(method="anchors", threshold=5)),
        ("seed out of range", dict(method="ig", seed=-1)),
    ]
    return [BadRequest(name, explain(**p), 400, route="explain") for name, p in cases]


# ---- the other protocols: TF Serving's columns and versions, KServe v2 ----------------------


def _v2(inputs: list, **fields) -> bytes:
    return _json({"inputs": inputs, **fields})


def _v2_files(names: list, datatype: str = "BYTES", shape: list | None = None) -> dict:
    return {
        "name": "filenames",
        "shape": shape or [len(names)],
        "datatype": datatype,
        "data": names,
    }


def v2_binary(
    name: str, elements: Sequence[bytes], size: int | None = None, raw: bytes | None = None
) -> tuple[bytes, dict]:
    """A KServe v2 binary-extension body of one BYTES input and its headers (``size``: the
    binary_data_size it claims; ``raw``: other bytes than the encoded ``elements``)."""
    if raw is None:
        raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    tensor = {"name": name, "shape": [len(elements)], "datatype": "BYTES"}
    head = _json({"inputs": [{**tensor, "parameters": {"binary_data_size": size or len(raw)}}]})
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def protocol_request_cases(
    inside_file: str, outside_file: str, model_name: str = "flowers"
) -> list[BadRequest]:
    """Bad requests to TF Serving's columnar format and version paths and to the KServe v2
    infer route, with the status each should get (routes relative to the server's URL)."""
    inside, base = str(inside_file), f"/v1/models/{model_name}"
    outside = str(outside_file)
    return [*tf_serving_cases(inside, outside, base), *v2_cases(inside, outside, model_name)]


def tf_serving_cases(inside: str, outside: str, base: str) -> list[BadRequest]:
    two_keys = {"filenames": [inside, inside], "key": [1]}
    return [
        BadRequest("columns of different lengths", _json({"inputs": two_keys}), 400),
        BadRequest("columnar unknown input", _json({"inputs": {"nope": [inside]}}), 400),
        BadRequest("columnar file name not a list", _json({"inputs": inside}), 400),
        BadRequest("columnar outside file", _json({"inputs": [outside]}), 403),
        BadRequest("columnar on :explain", _json({"inputs": [inside]}), 400, route="explain"),
        BadRequest("status of version 7", b"", 404, "GET", f"{base}/versions/7"),
        BadRequest("metadata of version 7", b"", 404, "GET", f"{base}/versions/7/metadata"),
        BadRequest(
            "predict on version 7",
            _json({"inputs": [inside]}),
            404,
            route=f"{base}/versions/7:predict",
        ),
        BadRequest("GET on a version's :predict", b"", 405, "GET", f"{base}/versions/1:predict"),
    ]


def v2_cases(inside: str, outside: str, model_name: str = "flowers") -> list[BadRequest]:
    infer, json_type = f"/v2/models/{model_name}/infer", {"Content-Type": "application/json"}
    files = _v2([_v2_files([inside])])

    def case(name, body, status, route=infer, headers=json_type):
        return BadRequest(name, body, status, route=route, headers=headers)

    huge, huge_headers = v2_binary("filenames", [inside.encode()], size=10**6)
    cut, cut_headers = v2_binary("filenames", [b"x"], raw=struct.pack("<I", 100) + b"x" * 10)
    good, _ = v2_binary("filenames", [inside.encode()])
    bomb, bomb_headers = v2_binary("img_bytes", [png_bomb()])
    return [
        case("v2 no Content-Type", files, 415, headers={}),
        case("v2 text/plain", files, 415, headers={"Content-Type": "text/plain"}),
        case("v2 gzip body", files, 415, headers={**json_type, "Content-Encoding": "gzip"}),
        case("v2 unknown model", files, 404, route="/v2/models/nope/infer"),
        case("v2 unknown version", files, 404, route=f"/v2/models/{model_name}/versions/7/infer"),
        BadRequest("v2 GET on infer", b"", 405, "GET", infer),
        case("v2 no inputs", _v2([]), 400),
        case("v2 INT32 file names", _v2([_v2_files([1], "INT32")]), 400),
        case("v2 shape and data disagree", _v2([_v2_files([inside], shape=[2])]), 400),
        case("v2 unknown output", _v2([_v2_files([inside])], outputs=[{"name": "nope"}]), 400),
        case("v2 unknown parameter", _v2([_v2_files([inside])], parameters={"x": 1}), 400),
        case(
            "v2 internal signature",
            _v2([_v2_files([inside])], parameters={"signature_name": "xai_preprocess"}),
            400,
        ),
        case("v2 outside file", _v2([_v2_files([outside])]), 403),
        case("v2 missing file", _v2([_v2_files([inside + ".missing.jpg"])]), 404),
        case("v2 a billion elements", _v2([_v2_files([], shape=[10**9])]), 413),
        case("v2 binary size past the end", huge, 400, headers=huge_headers),
        case("v2 BYTES length past its end", cut, 400, headers=cut_headers),
        case(
            "v2 header length past the body",
            good,
            400,
            headers={"Inference-Header-Content-Length": "99999"},
        ),
        case("v2 PNG bomb bytes", bomb, 413, headers=bomb_headers),
        case("v2 foreign Host", files, 421, headers={**json_type, "Host": "evil.example"}),
    ]
