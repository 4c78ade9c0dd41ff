"""KServe v2 tensors and the served signatures: which signature, checked inputs, metadata.

:func:`columnar_body` turns a checked :class:`~pmlv_utils.serving.oip.InferRequest` into TF
Serving's columnar body for its signature -- the one whose inputs the request names
(``filenames`` -> ``serving_default``, ``img_bytes`` -> ``from_bytes``, ``filenames`` + ``key``
-> ``passthrough``), or ``parameters.signature_name`` -- after checking each tensor's datatype
and shape against the signature. BYTES elements of a file-name input become UTF-8 file names
(read later only under the allowed roots); of an image-bytes input, the bytes (binary) or the
bytes their base64 JSON string holds. :func:`check_outputs` refuses outputs the signature does
not have; :func:`with_client_names` shows passed-through file names as the client sent them.
:func:`model_metadata` / :func:`server_metadata`: the v2 metadata answers.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping, Sequence

import numpy as np

from .oip import DATATYPE_OF, EXTENSIONS, PLATFORM, InferInput, InferRequest
from .requests import RequestError


def columnar_body(request: InferRequest, parser) -> dict:
    """TF Serving's columnar body for the request's signature (``parser``: the server's
    :class:`~pmlv_utils.serving.requests.RequestParser`): datatypes and shapes checked
    against the signature, elements converted to what its inputs take."""
    names = [t.name for t in request.inputs]
    signature = parser.signature(request.signature_name, {n: None for n in names})
    specs = parser.served[signature]
    if set(names) != set(specs):
        raise RequestError(
            400, f"signature {signature!r} takes inputs {sorted(specs)}, the request has {names}"
        )
    inputs = {t.name: tensor_value(t, *specs[t.name]) for t in request.inputs}
    return {"inputs": inputs, "signature_name": signature}


def tensor_value(tensor: InferInput, kind: str, spec) -> Any:
    """One input as TF Serving's columnar value: a list per instance (nested for rank > 1),
    or one value for a scalar input."""
    expected = DATATYPE_OF.get(spec.dtype.name)
    if tensor.datatype != expected:
        raise RequestError(
            400, f"input {tensor.name!r}: datatype {tensor.datatype}; the model takes {expected}"
        )
    values = [element(tensor.name, i, kind, v) for i, v in enumerate(tensor.values)]
    if spec.shape.rank == 0:
        if len(tensor.shape) > 1 or len(values) != 1:
            raise RequestError(400, f"input {tensor.name!r} is a scalar: send shape [] or [1]")
        return values[0]
    if len(tensor.shape) != spec.shape.rank or not spec.shape.is_compatible_with(tensor.shape):
        raise RequestError(
            400,
            f"input {tensor.name!r}: shape {list(tensor.shape)} does not fit "
            f"{[-1 if d is None else d for d in spec.shape.as_list()]} (first: the batch)",
        )
    if len(tensor.shape) == 1:
        return values
    return np.array(values, dtype=object).reshape(tensor.shape).tolist()


def element(name: str, i: int, kind: str, value: Any) -> Any:
    """A BYTES element as a file name (UTF-8) or image bytes (raw, or base64 in JSON)."""
    if kind == "file" and isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, f"input {name!r}, element {i}: not a UTF-8 file name") from None
    if kind == "bytes" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(
                400, f"input {name!r}, element {i}: image bytes in JSON must be base64"
            ) from None
    return value


def check_outputs(request: InferRequest, output_names: Sequence[str]) -> None:
    """400 for a requested output the signature does not have."""
    for name, _ in request.outputs or ():
        if name not in output_names:
            raise RequestError(
                400, f"unknown output {name[:40]!r}; the signature has {sorted(output_names)}"
            )


def with_client_names(outputs: dict[str, Any], client_names: list[dict[str, str]]) -> dict:
    """Outputs where a passed-through file name (the resolved path) is shown as the client
    sent it, instance by instance."""
    if not any(client_names):
        return outputs
    fixed = {}
    for key, value in outputs.items():
        array = np.asarray(value)
        if array.dtype == object and array.ndim == 1 and len(array) == len(client_names):
            array = np.array(
                [_client_name(v, names) for v, names in zip(array, client_names)], dtype=object
            )
        fixed[key] = array
    return fixed


def _client_name(value: Any, names: dict[str, str]) -> Any:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return names[text].encode("utf-8") if text in names else value


def tensor_metadata(specs: Mapping[str, Any]) -> list[dict]:
    """``[{"name", "datatype", "shape"}]`` of TensorSpecs (an unknown dimension is -1)."""
    return [
        {
            "name": name,
            "datatype": DATATYPE_OF.get(spec.dtype.name, spec.dtype.name.upper()),
            "shape": (
                [-1 if d is None else d for d in spec.shape.as_list()]
                if spec.shape.rank is not None
                else [-1]
            ),
        }
        for name, spec in sorted(specs.items())
    ]


def model_metadata(
    name: str, version: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> dict:
    """The model metadata answer: name, versions, platform, inputs and outputs."""
    return {
        "name": name,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": tensor_metadata(inputs),
        "outputs": tensor_metadata(outputs),
    }


def server_metadata(name: str, version: str) -> dict:
    return {"name": name, "version": version, "extensions": list(EXTENSIONS)}
