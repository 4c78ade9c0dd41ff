"""TF Serving's REST API: model status, the signature_def metadata, columnar requests, versions.

What TensorFlow Serving answers (``g3doc/api/api_rest.md``), for the one model version served:

- :func:`model_status`: ``GET /v1/models/flowers[/versions/1]`` ->
  ``{"model_version_status": [{"version": "1", "state": "AVAILABLE",
  "status": {"error_code": "OK", "error_message": ""}}]}``;
- :func:`metadata_body`: ``GET /v1/models/flowers[/versions/1]/metadata`` ->
  ``{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {name: ...}}}}``,
  each SignatureDef read from ``saved_model.pb`` and printed as TF Serving prints it (proto3
  JSON, proto field names, int64 sizes as strings: :func:`read_signature_defs`);
- :func:`columnar_to_rows`: the columnar request ``{"inputs": {name: tensor, ...}}`` (or a
  bare value for a one-input signature) as the equivalent rows ``{"instances": [...]}``, so the
  row parser checks it like any other request; :func:`outputs_body` answers it as TF Serving
  does: ``{"outputs": {name: tensor, ...}}``, or the bare tensor when there is one output;
- :func:`check_version`: any version but ``"1"`` -> 404 ``Servable not found for request``.

Only the signatures ``:predict`` serves are described (never the internal ``xai_*`` ones nor
``__saved_model_init_op``): what the metadata lists can be called.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow.core.protobuf import saved_model_pb2

from .requests import RequestError

MODEL_VERSION = "1"
COLUMNAR_FIELDS = {"inputs", "signature_name"}


def model_status(version: str = MODEL_VERSION) -> dict:
    """TF Serving's GetModelStatusResponse for a version that is loaded and serving."""
    return {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def check_version(model_name: str, version: Any) -> None:
    """404 (TF Serving's message) unless ``version`` is the served one; None: no version asked."""
    if version is not None and str(version) != MODEL_VERSION:
        raise RequestError(
            404, f"Servable not found for request: Specific({model_name}, {version})"
        )


def read_signature_defs(model_dir: str, names: Iterable[str]) -> dict[str, dict]:
    """The SignatureDefs ``names`` of the SavedModel in ``model_dir`` as TF Serving prints them."""
    saved = saved_model_pb2.SavedModel()
    base = str(model_dir).rstrip("/")
    if tf.io.gfile.exists(f"{base}/saved_model.pb"):
        with tf.io.gfile.GFile(f"{base}/saved_model.pb", "rb") as f:
            saved.ParseFromString(f.read())
    else:
        with tf.io.gfile.GFile(f"{base}/saved_model.pbtxt", "r") as f:
            text_format.Parse(f.read(), saved)
    defs = saved.meta_graphs[0].signature_def
    return {
        name: json_format.MessageToDict(
            defs[name],
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        for name in sorted(names)
        if name in defs
    }


def metadata_body(model_name: str, signature_defs: Mapping[str, dict]) -> dict:
    """TF Serving's GetModelMetadataResponse (the ``signature_def`` metadata field)."""
    return {
        "model_spec": {"name": model_name, "signature_name": "", "version": MODEL_VERSION},
        "metadata": {"signature_def": {"signature_def": dict(signature_defs)}},
    }


def is_columnar(body: Any) -> bool:
    """Whether ``body`` is a columnar request (``inputs`` without ``instances``)."""
    return isinstance(body, dict) and "inputs" in body and "instances" not in body


def columnar_to_rows(body: dict, parser) -> dict:
    """The columnar body ``{"inputs": ..., "signature_name": ...}`` as the equivalent rows.

    ``inputs`` is an object of named tensors (batched inputs: one list entry per instance, of
    the same length; a scalar input: one value), or a bare tensor for a one-input signature.
    Without ``signature_name`` the signature is the one whose inputs are named (a bare tensor:
    file names -> ``serving_default``, ``{"b64": ...}`` values -> ``from_bytes``), as for rows.
    ``parser`` is the server's :class:`~pmlv_utils.serving.requests.RequestParser`.
    """
    unknown = set(body) - COLUMNAR_FIELDS
    if unknown:
        raise RequestError(400, f"unknown request fields {sorted(map(str, unknown))[:10]}")
    value = body["inputs"]
    named = isinstance(value, dict) and set(value) != {"b64"}
    if named and not value:
        raise RequestError(400, "'inputs' must name at least one input")
    first = value[0] if isinstance(value, list) and value else value
    if not named and not isinstance(first, (str, dict)):
        raise RequestError(
            400,
            "'inputs': expected a list of file names or {\"b64\": ...} values, "
            "or an object of named inputs",
        )
    signature = parser.signature(
        body.get("signature_name"), {k: None for k in value} if named else first
    )
    specs = parser.served[signature]
    if not named:
        if len(specs) != 1:
            raise RequestError(
                400,
                f"signature {signature!r} takes inputs {sorted(specs)}: send 'inputs' as an "
                "object of named inputs",
            )
        value = {next(iter(specs)): value}
    if set(value) != set(specs):
        raise RequestError(
            400,
            f"'inputs': signature {signature!r} expects inputs {sorted(specs)}, "
            f"got {sorted(map(str, value))[:10]}",
        )
    batched = [k for k in specs if specs[k][1].shape.rank != 0]
    n = batch_size(value, batched)
    instances = [{k: value[k][i] if k in batched else value[k] for k in specs} for i in range(n)]
    return {"instances": instances, "signature_name": signature}


def batch_size(inputs: Mapping[str, Any], batched: list[str]) -> int:
    """The common first dimension of the batched inputs (each a non-empty list)."""
    if not batched:
        raise RequestError(400, "'inputs': the signature has no batched input")
    for key in batched:
        if not isinstance(inputs[key], list) or not inputs[key]:
            raise RequestError(
                400, f"'inputs': {key!r} must be a non-empty list (one value per instance)"
            )
    sizes = {key: len(inputs[key]) for key in batched}
    if len(set(sizes.values())) > 1:
        raise RequestError(
            400, f"'inputs': the batched inputs must have the same length, got {sizes}"
        )
    return sizes[batched[0]]


def columns(rows: list[dict], outputs: Mapping[str, Any]) -> dict:
    """Row answers (one dict per instance) back as columns; an output without a batch
    dimension stays one value."""
    return {
        key: rows[0][key] if np.ndim(outputs[key]) == 0 else [row[key] for row in rows]
        for key in sorted(outputs)
    }


def outputs_body(named: Mapping[str, Any]) -> dict:
    """``{"outputs": ...}``: the one output's value alone, else the object of named outputs."""
    if len(named) == 1:
        return {"outputs": next(iter(named.values()))}
    return {"outputs": dict(named)}


def answer(rows: list[dict], outputs: Mapping[str, Any], columnar: bool) -> dict:
    """The ``:predict`` answer: ``{"predictions": rows}``, or ``{"outputs": ...}`` for a
    columnar request."""
    return outputs_body(columns(rows, outputs)) if columnar else {"predictions": rows}
