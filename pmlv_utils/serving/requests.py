"""Request bodies: read with a size limit, parsed as JSON, validated into a :class:`ParsedRequest`.

:class:`RequestParser` checks ``{"instances": [...], "signature_name": ..., "parameters": ...}``
against the served signatures' inputs (:func:`served_inputs`; TF Serving's columnar
``{"inputs": ...}`` and KServe v2 tensors are turned into these rows first, by
:mod:`~pmlv_utils.serving.tfserving` and :mod:`~pmlv_utils.serving.oip`, so every protocol
gets the same checks) and fills each input from JSON:
file names through a path policy (:class:`~pmlv_utils.serving.paths.PathPolicy`), bytes from
``{"b64": ...}``, numbers as arrays. Every problem is a :class:`RequestError` carrying the 4xx
status and the message the client gets. Nothing here knows the web framework or the model.

Strict by design: the body is UTF-8 JSON without NaN/Infinity and with at most
``max_values`` JSON values (counted on the raw bytes before parsing, so a body of millions of
tiny values is refused in milliseconds); integer inputs take JSON integers only (no floats,
no booleans, within the dtype's range); float inputs take finite numbers that fit the dtype;
file names are valid UTF-8. Internal signatures (``xai_*``) are not callable on ``:predict``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .. import predict

DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_BODY_BYTES = 16 * 2**20
DEFAULT_MAX_EXPLAIN_INSTANCES = 8
DEFAULT_MAX_JSON_VALUES = 200_000
DEFAULT_BODY_TIMEOUT_S = 30.0
FILENAME_INPUTS = ("filenames", "filename")
BODY_FIELDS = {"instances", "signature_name", "parameters"}
# Signatures the exported model has for :explain only (pixels in, pixels out): never on :predict.
INTERNAL_SIGNATURES = ("xai_preprocess", "xai_model")
JSON_MEDIA_TYPE = "application/json"


class RequestError(Exception):
    """A client error: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = dict(headers or {})


@dataclass
class ParsedRequest:
    """A valid request: the signature to run and its inputs (one value per instance)."""

    signature: str
    inputs: dict[str, list]  # input name -> one value per instance (resolved / decoded)
    n: int
    client_names: list[dict[str, str]] = field(
        default_factory=list
    )  # resolved path -> client's name
    columnar: bool = False  # sent as TF Serving's columnar {"inputs": ...}: answer {"outputs"}


# ---- the body -----------------------------------------------------------------------


async def read_body(request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, or RequestError 413 once it exceeds ``limit`` bytes, or 408 when it
    has not all arrived within ``timeout_s`` seconds (a slow or stalled client)."""
    if timeout_s is None:
        return await _read_body(request, limit)
    try:
        return await asyncio.wait_for(_read_body(request, limit), timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(
            408, f"the request body did not arrive within {timeout_s:g} s", {"Connection": "close"}
        ) from None


async def _read_body(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = RequestError(413, f"request body over the server's limit of {limit} bytes")
    if declared is not None:
        try:
            if int(declared) > limit:
                await _drain(request, limit)
                raise too_big
        except ValueError:
            raise RequestError(400, "invalid Content-Length") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, limit)
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request, limit: int) -> None:
    """Read and drop the rest of an oversized body (up to a cap), so the client gets our 413."""
    cap, seen = max(8 * limit, 64 * 2**20), 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > cap:
                break
    except Exception:  # noqa: BLE001 -- stream already consumed or client gone
        pass


def check_content_type(value: str | None) -> None:
    """415 unless the Content-Type is ``application/json`` (optionally ``; charset=utf-8``).

    A missing Content-Type is refused too: browsers send bodies without a preflight only as
    text/plain, form data or an untyped blob, so insisting on JSON keeps web pages out.
    """
    if not value:
        raise RequestError(415, f"missing Content-Type: send {JSON_MEDIA_TYPE}")
    media, *params = [part.strip() for part in value.split(";")]
    if media.lower() != JSON_MEDIA_TYPE:
        raise RequestError(
            415, f"Content-Type {value[:80]!r} is not supported; send {JSON_MEDIA_TYPE}"
        )
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise RequestError(415, f"charset {val.strip()[:40]!r} is not supported; send utf-8")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range for a number")
    return value


def count_json_values(raw: bytes) -> int:
    """An upper bound of the values in a JSON text, from its separators (fast, C-level)."""
    return raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1


def parse_json(raw: bytes, max_values: int | None = DEFAULT_MAX_JSON_VALUES) -> Any:
    """Strict JSON: UTF-8, no NaN / Infinity / overflowing numbers, at most ``max_values``."""
    if max_values is not None and count_json_values(raw) > max_values:
        raise RequestError(
            413, f"the request has more than {max_values:,} JSON values; this server takes fewer"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "the request body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise RequestError(400, "the request JSON is nested too deeply") from None
    except ValueError as err:
        if "JSON number" in str(err) or "out of range" in str(err):
            raise RequestError(400, f"the request body is not valid JSON: {err}") from None
        raise RequestError(400, "the request body is not valid JSON") from None


def check_body(body: Any, limit: int) -> list:
    """The body's ``instances`` after checking the body's shape and size."""
    if not isinstance(body, dict):
        raise RequestError(400, 'the request body must be a JSON object like {"instances": [...]}')
    if "instances" in body and "inputs" in body:
        raise RequestError(400, "send 'instances' (rows) or 'inputs' (columns), not both")
    if "instances" not in body:
        if "inputs" in body:
            raise RequestError(
                400, "the columnar 'inputs' format is for :predict only; send 'instances' (rows)"
            )
        raise RequestError(400, f"missing 'instances'; got fields {sorted(body)[:10]}")
    unknown = set(body) - BODY_FIELDS
    if unknown:
        raise RequestError(400, f"unknown request fields {sorted(unknown)[:10]}")
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "'instances' must be a non-empty list")
    if len(instances) > limit:
        raise RequestError(
            413, f"{len(instances)} instances in one request; this server takes at most {limit}"
        )
    return instances


# ---- which inputs can be filled from JSON, and how -----------------------------------


def input_kind(name: str, spec) -> str | None:
    """How an input is filled from JSON: 'file', 'bytes', 'number' (None: not servable)."""
    if spec.dtype.name == "string":
        if name in FILENAME_INPUTS:
            return "file"
        if "bytes" in name or name.endswith("b64"):
            return "bytes"
        return None  # an unknown string input might be a path: do not expose it
    if spec.dtype.is_integer or spec.dtype.is_floating or spec.dtype.is_bool:
        return "number"
    return None


def served_inputs(input_specs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, tuple]]:
    """The servable signatures: signature -> input name -> (kind, TensorSpec).

    ``input_specs`` maps each signature to its inputs' specs; a signature is served only if
    every one of its inputs has a kind (:func:`input_kind`).
    """
    served = {}
    for sig in sorted(input_specs):
        specs = input_specs[sig]
        kinds = {k: input_kind(k, s) for k, s in specs.items()}
        if specs and all(kinds.values()):
            served[sig] = {k: (kinds[k], specs[k]) for k in specs}
    return served


def file_value(where: str, value: Any, paths) -> str:
    """A file name resolved by the path policy ``paths`` (its refusal, prefixed by ``where``)."""
    if not isinstance(value, str):
        raise RequestError(400, f"{where}: expected a file name string")
    try:
        return paths.resolve(value)
    except RequestError as err:
        raise RequestError(err.status, f"{where}: {err.message}") from None


def bytes_value(where: str, value: Any) -> bytes:
    """The bytes of ``{"b64": "..."}`` (or ``bytes`` as such: binary protocols; JSON has none)."""
    if isinstance(value, bytes):
        if not value:
            raise RequestError(400, f"{where}: empty image bytes")
        return value
    if not (isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str)):
        raise RequestError(400, f'{where}: bytes must be sent as {{"b64": "<base64 string>"}}')
    try:
        data = base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{where}: invalid base64") from None
    if not data:
        raise RequestError(400, f"{where}: empty image bytes")
    return data


def number_value(where: str, value: Any, spec) -> np.ndarray:
    """A number or nested list as an array of the spec's dtype and (per-instance) shape.

    Strict: an integer input takes JSON integers within the dtype's range (no 1.5, no true),
    a float input finite numbers that stay finite in its dtype, a bool input true / false.
    """
    if isinstance(value, (str, dict)) or value is None:
        raise RequestError(400, f"{where}: expected a number or nested list of numbers")
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    _check_leaves(where, value, dtype)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(400, f"{where}: not a {spec.dtype.name} value") from None
    if dtype.kind == "f" and not np.isfinite(array).all():
        raise RequestError(400, f"{where}: a value is out of range for {spec.dtype.name}")
    expected = spec.shape[1:] if spec.shape.rank else spec.shape
    if not expected.is_compatible_with(array.shape):
        raise RequestError(
            400, f"{where}: shape {list(array.shape)} does not fit {expected.as_list()}"
        )
    return array


def _check_leaves(where: str, value: Any, dtype: np.dtype) -> None:
    """Every number in ``value`` (a nested list) is of a JSON type ``dtype`` takes."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            if type(item) is not int or not info.min <= item <= info.max:
                raise RequestError(
                    400,
                    f"{where}: expected an integer from {info.min} to {info.max} "
                    f"({dtype.name}), got {_short(item)}",
                )
        elif dtype.kind == "b":
            if type(item) is not bool:
                raise RequestError(400, f"{where}: expected true or false, got {_short(item)}")
        elif type(item) not in (int, float):
            raise RequestError(
                400, f"{where}: expected a number ({dtype.name}), got {_short(item)}"
            )


def _short(value: Any) -> str:
    return json.dumps(value)[:40] if isinstance(value, (bool, int, float)) else type(value).__name__


def one_value_for_scalars(inputs: dict[str, list], specs: Mapping[str, tuple]) -> dict[str, Any]:
    """A scalar input (rank 0) takes one value for the whole request: all instances must agree."""
    for key, (_, spec) in specs.items():
        if spec.shape.rank == 0:
            if len(set(map(repr, inputs[key]))) > 1:
                raise RequestError(
                    400, f"field {key!r} is a scalar: every instance must carry the same value"
                )
            inputs[key] = inputs[key][0]
    return inputs


# ---- the parser ----------------------------------------------------------------------


class RequestParser:
    """Validates request bodies against the served signatures (raises :class:`RequestError`).

    ``served`` is :func:`served_inputs`' table; ``paths`` resolves file names (``.resolve``).
    """

    def __init__(
        self,
        served: dict,
        paths,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        internal: tuple[str, ...] = INTERNAL_SIGNATURES,
    ):
        self.paths, self.max_instances = paths, int(max_instances)
        self.internal = {s: served[s] for s in internal if s in served}
        self.served = {s: v for s, v in served.items() if s not in self.internal}

    def parse(
        self, body: Any, max_instances: int | None = None, allow_signature: bool = True
    ) -> ParsedRequest:
        """Validate a request body and turn it into signature inputs."""
        instances = check_body(body, max_instances or self.max_instances)
        signature = self.signature(body.get("signature_name"), instances[0], allow_signature)
        specs = self.served[signature]
        inputs: dict[str, list] = {k: [] for k in specs}
        client_names: list[dict[str, str]] = []
        for i, raw in enumerate(instances):
            instance = self.fields(i, raw, signature)
            names = {}
            for key, (kind, spec) in specs.items():
                value = self.convert(i, key, kind, spec, instance[key])
                if kind == "file":
                    names[value] = instance[key]
                inputs[key].append(value)
            client_names.append(names)
        inputs = one_value_for_scalars(inputs, specs)
        return ParsedRequest(signature, inputs, len(instances), client_names)

    def signature(self, requested: Any, first: Any, allowed: bool = True) -> str:
        """The requested ``signature_name`` (checked), else the one the first instance fits."""
        if requested is not None and not allowed:
            raise RequestError(400, "'signature_name' is not used by this route")
        if requested is None:
            return self.infer_signature(first)
        if isinstance(requested, str) and requested in self.internal:
            raise RequestError(
                400,
                f"signature {requested!r} is internal (used by :explain); "
                f"this model serves {sorted(self.served)}",
            )
        if not isinstance(requested, str) or requested not in self.served:
            raise RequestError(
                400,
                f"unknown signature_name {requested!r}; this model serves {sorted(self.served)}",
            )
        return requested

    def infer_signature(self, instance: Any) -> str:
        """A file name string -> the default signature; an object -> the one with its fields."""
        if isinstance(instance, str):
            return predict.DEFAULT_SIGNATURE
        if not isinstance(instance, dict):
            raise RequestError(
                400, "instance 0: expected a file name string or an object of named inputs"
            )
        keys = set(instance)
        if keys == {"b64"}:
            keys = {"img_bytes"}
        candidates = [s for s, specs in self.served.items() if set(specs) == keys]
        if predict.DEFAULT_SIGNATURE in candidates:
            return predict.DEFAULT_SIGNATURE
        if candidates:
            return candidates[0]
        raise RequestError(
            400,
            f"instance 0: fields {sorted(map(str, keys))[:10]} match no signature; "
            f"inputs by signature: { {s: sorted(v) for s, v in self.served.items()} }",
        )

    def fields(self, i: int, instance: Any, signature: str) -> dict:
        """Instance ``i`` as an object with exactly the signature's fields."""
        specs = self.served[signature]
        if len(specs) == 1 and not (isinstance(instance, dict) and set(instance) == set(specs)):
            instance = {next(iter(specs)): instance}  # bare value for a one-input signature
        if not isinstance(instance, dict):
            raise RequestError(400, f"instance {i}: expected an object with fields {sorted(specs)}")
        if set(instance) != set(specs):
            raise RequestError(
                400,
                f"instance {i}: signature {signature!r} expects fields {sorted(specs)}, "
                f"got {sorted(map(str, instance))[:10]}",
            )
        return instance

    def convert(self, i: int, key: str, kind: str, spec, value: Any):
        """One field's JSON value as the model input of its kind."""
        where = f"instance {i}, field {key!r}"
        if kind == "file":
            return file_value(where, value, self.paths)
        if kind == "bytes":
            return bytes_value(where, value)
        return number_value(where, value, spec)
