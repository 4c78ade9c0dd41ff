"""KServe v2 / Open Inference Protocol (OIP): the wire codec of infer requests and answers.

The wire format (kserve/open-inference-protocol, with Triton's ``binary_tensor_data`` extension):

- JSON: ``{"id": ..., "parameters": {...}, "inputs": [{"name": ..., "shape": [...],
  "datatype": "BYTES", "data": [...]}], "outputs": [{"name": ..., "parameters":
  {"binary_data": false}}]}``; ``data`` is row-major, flat or nested.
- The binary tensor extension (tritonclient's default): the header
  ``Inference-Header-Content-Length: N`` says the first N bytes of the body are that JSON; the
  rest are the tensors of the inputs with ``parameters.binary_data_size``, in input order:
  numbers little-endian, BYTES as ``<uint32 little-endian length><bytes>`` per element. An
  answer with binary outputs has the same header and ``binary_data_size`` per output
  (Content-Type ``application/octet-stream``); JSON outputs carry ``data``.

A request: :func:`check_headers` (which bodies the route takes), :func:`parse_infer` ->
:class:`InferRequest` (every field checked; element counts capped before anything is
decoded); :mod:`~pmlv_utils.serving.oip_tensors` then maps it to a signature's inputs, which
the server checks as rows (the same parser, path policy and pixel budget as ``:predict``).
The answer: :func:`encode_response`. Nothing here knows the web framework, TensorFlow or the
model.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .requests import JSON_MEDIA_TYPE, RequestError, check_content_type, parse_json

HEADER = "Inference-Header-Content-Length"
BINARY_MEDIA_TYPE = "application/octet-stream"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "tensorflow_savedmodel"
# dtype name (TensorFlow's or numpy's) -> OIP datatype; BYTES are strings / objects.
DATATYPE_OF = {
    "bool": "BOOL",
    **{f"uint{b}": f"UINT{b}" for b in (8, 16, 32, 64)},
    **{f"int{b}": f"INT{b}" for b in (8, 16, 32, 64)},
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
    "object": "BYTES",
}
NUMPY_OF = {dt: np.dtype(name) for name, dt in DATATYPE_OF.items() if dt != "BYTES"}
REQUEST_FIELDS = {"id", "parameters", "inputs", "outputs"}
REQUEST_PARAMETERS = {"binary_data_output": bool, "signature_name": str}
TENSOR_FIELDS = {"name", "shape", "datatype", "parameters", "data"}
OUTPUT_FIELDS = {"name", "parameters"}


@dataclass
class InferInput:
    """One input tensor of a request: its elements flat, in row-major order."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list  # bytes / str for BYTES (binary / JSON), numbers otherwise


@dataclass
class InferRequest:
    """A checked infer request."""

    inputs: list[InferInput]
    outputs: list[tuple[str, bool]] | None  # (name, binary) as requested; None: every output
    binary_output: bool  # the default for outputs (``parameters.binary_data_output``)
    signature_name: str | None = None
    id: str | None = None


class OutputError(ValueError):
    """An output the answer cannot carry (NaN, Infinity, an unknown dtype): a fault of the
    model (inputs are checked), answered 500."""


# ---- the request ---------------------------------------------------------------------


def check_headers(headers: Mapping[str, str]) -> None:
    """415 unless the body is ``application/json``, ``application/octet-stream`` or the binary
    tensor extension (the ``Inference-Header-Content-Length`` header, with any of those types or
    none: tritonclient sends no Content-Type). Never a compressed body.

    A browser sends neither type nor that header without a CORS preflight (which this server
    does not answer), so web pages are kept out as on the JSON routes. A JSON-only request from
    tritonclient must say its type: ``infer(..., headers={"Content-Type": "application/json"})``.
    """
    encoding = headers.get("content-encoding")
    if encoding and encoding.strip().lower() != "identity":
        raise RequestError(
            415, f"Content-Encoding {encoding[:40]!r} is not supported; send the body as is"
        )
    value = headers.get("content-type")
    if not value:
        if headers.get(HEADER) is None:
            raise RequestError(
                415,
                f"missing Content-Type: send {JSON_MEDIA_TYPE} or {BINARY_MEDIA_TYPE}, or the "
                f"binary tensor extension's {HEADER} header (tritonclient: binary_data=True, "
                "or headers={'Content-Type': 'application/json'})",
            )
        return
    media = value.split(";")[0].strip().lower()
    if media == JSON_MEDIA_TYPE:
        check_content_type(value)  # the charset, if any, must be UTF-8
    elif media != BINARY_MEDIA_TYPE:
        raise RequestError(
            415,
            f"Content-Type {value[:80]!r} is not supported; send {JSON_MEDIA_TYPE} or "
            f"{BINARY_MEDIA_TYPE}",
        )


def split_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a body (all JSON without the extension header)."""
    if header_length is None:
        return raw, b""
    text = header_length.strip()
    size = int(text) if text.isdigit() else -1
    if not 0 < size <= len(raw):
        raise RequestError(
            400, f"{HEADER} {header_length[:20]!r} does not fit a body of {len(raw)} bytes"
        )
    return raw[:size], raw[size:]


def parse_infer(
    raw: bytes, header_length: str | None, max_values: int | None, max_elements: int
) -> InferRequest:
    """A checked :class:`InferRequest` (RequestError 4xx): at most ``max_values`` JSON values
    and ``max_elements`` tensor elements in all (counted from the shapes, before decoding)."""
    text, blob = split_body(raw, header_length)
    body = parse_json(text, max_values)
    if not isinstance(body, dict):
        raise RequestError(400, 'the request must be a JSON object like {"inputs": [...]}')
    _known("request", body, REQUEST_FIELDS)
    params = parameters("request", body.get("parameters"), REQUEST_PARAMETERS)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, "'id' must be a string")
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise RequestError(400, "'inputs' must be a non-empty list of tensors")
    headers = [tensor_header(i, t) for i, t in enumerate(tensors)]
    names = [h[0] for h in headers]
    if len(set(names)) < len(names):
        raise RequestError(400, f"input names must be unique, got {names[:10]}")
    total = sum(math.prod(h[2]) for h in headers)
    if total > max_elements:
        raise RequestError(
            413, f"{total:,} tensor elements in one request; this server takes {max_elements:,}"
        )
    inputs, offset = [], 0
    for (name, datatype, shape, size), tensor in zip(headers, tensors):
        count = math.prod(shape)
        if size is None:
            values = json_values(name, datatype, count, tensor.get("data"))
        else:
            values = binary_values(name, datatype, count, blob[offset : offset + size], size)
            offset += size
        inputs.append(InferInput(name, datatype, shape, values))
    if offset != len(blob):
        raise RequestError(
            400,
            f"the binary part of the body has {len(blob)} bytes; the inputs' "
            f"binary_data_size add up to {offset}",
        )
    default_binary = params.get("binary_data_output", False)
    wanted = requested_outputs(body.get("outputs"), default_binary)
    return InferRequest(inputs, wanted, default_binary, params.get("signature_name"), request_id)


def _known(where: str, obj: dict, fields: set[str]) -> None:
    unknown = set(obj) - fields
    if unknown:
        raise RequestError(
            400,
            f"{where}: unknown fields {sorted(map(str, unknown))[:10]}; known: {sorted(fields)}",
        )


def parameters(where: str, value: Any, allowed: Mapping[str, type]) -> dict:
    """A ``parameters`` object with only the ``allowed`` names, each of its type."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(400, f"{where}: 'parameters' must be an object")
    for key, item in value.items():
        kind = allowed.get(key)
        if kind is None:
            raise RequestError(
                400,
                f"{where}: parameter {str(key)[:40]!r} is not supported; known: {sorted(allowed)}",
            )
        if type(item) is not kind:
            raise RequestError(400, f"{where}: parameter {key!r} must be a {kind.__name__}")
    return value


def tensor_header(i: int, tensor: Any) -> tuple[str, str, tuple[int, ...], int | None]:
    """``(name, datatype, shape, binary_data_size or None)`` of input ``i``, checked."""
    if not isinstance(tensor, dict):
        raise RequestError(400, f"input {i}: expected an object with name, shape, datatype")
    _known(f"input {i}", tensor, TENSOR_FIELDS)
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(name, str) or not name:
        raise RequestError(400, f"input {i}: 'name' must be a non-empty string")
    if datatype not in NUMPY_OF and datatype != "BYTES":
        raise RequestError(
            400,
            f"input {name!r}: datatype {str(datatype)[:20]!r} is not supported; "
            f"use one of {sorted([*NUMPY_OF, 'BYTES'])}",
        )
    if not (
        isinstance(shape, list)
        and len(shape) <= 8
        and all(type(d) is int and 0 <= d < 2**31 for d in shape)
    ):
        raise RequestError(
            400, f"input {name!r}: 'shape' must be a list of at most 8 non-negative integers"
        )
    size = parameters(f"input {name!r}", tensor.get("parameters"), {"binary_data_size": int})
    size = size.get("binary_data_size")
    if (size is None) == ("data" not in tensor):
        raise RequestError(
            400, f"input {name!r}: send either 'data' or parameters.binary_data_size (binary)"
        )
    if size is not None and size < 0:
        raise RequestError(400, f"input {name!r}: binary_data_size must not be negative")
    return name, datatype, tuple(shape), size


def json_values(name: str, datatype: str, count: int, data: Any) -> list:
    """The elements of a JSON ``data`` (flat or nested lists), ``count`` of them."""
    flat, stack = [], [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
        if len(flat) > count:
            break
    if len(flat) != count:
        raise RequestError(
            400, f"input {name!r}: its shape has {count} elements, 'data' has a different count"
        )
    if datatype == "BYTES" and not all(isinstance(v, str) for v in flat):
        raise RequestError(400, f"input {name!r}: BYTES elements in JSON must be strings")
    return flat


def binary_values(name: str, datatype: str, count: int, raw: bytes, size: int) -> list:
    """The elements of a binary tensor: ``count`` of them in exactly ``size`` bytes."""
    if len(raw) != size:
        raise RequestError(
            400, f"input {name!r}: binary_data_size {size} is past the end of the body"
        )
    if datatype != "BYTES":
        dtype = NUMPY_OF[datatype].newbyteorder("<")
        if size != count * dtype.itemsize:
            raise RequestError(
                400,
                f"input {name!r}: {count} {datatype} elements take {count * dtype.itemsize} "
                f"bytes, binary_data_size is {size}",
            )
        return np.frombuffer(raw, dtype=dtype).tolist()
    values, offset = [], 0
    while offset < size and len(values) < count:
        if offset + 4 > size:
            break
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > size:
            break
        values.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    if len(values) != count or offset != size:
        raise RequestError(
            400,
            f"input {name!r}: the BYTES data is not {count} elements of "
            "<4-byte little-endian length><bytes>",
        )
    return values


def requested_outputs(value: Any, default_binary: bool) -> list[tuple[str, bool]] | None:
    """The requested ``(output name, binary)`` pairs; None when every output is wanted."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise RequestError(400, "'outputs' must be a non-empty list of {\"name\": ...} objects")
    wanted = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError(400, f"output {i}: expected an object with a 'name' string")
        _known(f"output {item['name']!r}", item, OUTPUT_FIELDS)
        params = parameters(
            f"output {item['name']!r}", item.get("parameters"), {"binary_data": bool}
        )
        wanted.append((item["name"], params.get("binary_data", default_binary)))
    names = [n for n, _ in wanted]
    if len(set(names)) < len(names):
        raise RequestError(400, f"output names must be unique, got {names[:10]}")
    return wanted


# ---- the answer ---------------------------------------------------------------------


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return DATATYPE_OF[array.dtype.name]
    except KeyError:
        raise OutputError(f"the model produced an output of type {array.dtype.name}") from None


def encode_response(
    model_name: str, version: str, request: InferRequest, outputs: Mapping[str, Any]
) -> tuple[bytes, dict[str, str], str]:
    """``(body, headers, media type)`` of the answer: the requested outputs (every output,
    sorted by name, when none was requested), each as JSON ``data`` or binary."""
    wanted = request.outputs or [(n, request.binary_output) for n in sorted(outputs)]
    entries, blobs = [], []
    for name, binary in wanted:
        array = np.asarray(outputs[name])
        datatype = datatype_of(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise OutputError(f"output {name!r} has a value that is not a finite number")
        entry = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        flat = array.ravel()
        if datatype == "BYTES":
            flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat]
        if binary:
            raw = bytes_tensor(flat) if datatype == "BYTES" else _little_endian(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        elif datatype == "BYTES":
            entry["data"] = [v.decode("utf-8", "replace") for v in flat]
        else:
            entry["data"] = flat.tolist()
        entries.append(entry)
    answer = {"model_name": model_name, "model_version": version, "outputs": entries}
    if request.id is not None:
        answer = {"id": request.id, **answer}
    head = json.dumps(answer, allow_nan=False).encode("utf-8")
    if not blobs:
        return head, {}, JSON_MEDIA_TYPE
    return head + b"".join(blobs), {HEADER: str(len(head))}, BINARY_MEDIA_TYPE


def bytes_tensor(values: Sequence[bytes]) -> bytes:
    """BYTES elements as ``<uint32 little-endian length><bytes>`` each."""
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def _little_endian(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
