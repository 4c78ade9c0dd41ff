"""The prediction service behind the routes: metadata, running signatures, explanations.

:class:`PredictionService` is independent of the web framework, so the same class can sit
behind another server (KServe, a Vertex custom container, a test) -- only
:func:`pmlv_utils.serving.app.create_app` knows FastAPI. Requests are parsed by
:class:`~pmlv_utils.serving.requests.RequestParser`; ``:explain`` answers are computed by
:class:`Explainer` and formatted (Vertex-like) by :func:`explanation_rows`.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from .. import predict, safe_io
from ..preprocess import preprocess_image
from .paths import PathPolicy
from .requests import (
    DEFAULT_MAX_EXPLAIN_INSTANCES,
    DEFAULT_MAX_INSTANCES,
    ParsedRequest,
    RequestError,
    RequestParser,
    served_inputs,
)

DEFAULT_MODEL_NAME = "flowers"
# What the model raises on an input it cannot read (not an image, a folder...): the client's fault.
CLIENT_ERRORS = (
    tf.errors.InvalidArgumentError,
    tf.errors.FailedPreconditionError,
    tf.errors.NotFoundError,
)
EXPLAIN_SIGNATURES = ("serving_default", "from_bytes")


class PredictionService:
    """The served model: parses ``{"instances": ...}`` requests and runs signatures."""

    def __init__(
        self,
        model_dir: str,
        name: str = DEFAULT_MODEL_NAME,
        allowed_roots: Sequence[str] = (),
        max_instances: int = DEFAULT_MAX_INSTANCES,
        max_explain_instances: int = DEFAULT_MAX_EXPLAIN_INSTANCES,
    ):
        self.model_dir, self.name = str(model_dir), name
        self.model = predict.LoadedModel(model_dir)
        self.paths = PathPolicy(allowed_roots)
        self.max_instances = int(max_instances)
        self.max_explain_instances = int(max_explain_instances)
        specs = {sig: self.model.input_specs(sig) for sig in self.model.signatures}
        self.served = served_inputs(specs)
        self.parser = RequestParser(self.served, self.paths, self.max_instances)
        self.explainer = Explainer(self.model_dir, self.model.labels)

    def metadata(self) -> dict:
        described = self.model.describe()
        return {
            "name": self.name,
            "ready": True,
            "labels": self.model.labels,
            "img_size": self.model.img_size,
            "default_signature": predict.DEFAULT_SIGNATURE,
            "signatures": {k: described[k] for k in self.served},
            "model_version_status": [{"version": "1", "state": "AVAILABLE"}],
        }

    def parse(
        self, body: Any, max_instances: int | None = None, allow_signature: bool = True
    ) -> ParsedRequest:
        """Validate a request body and turn it into signature inputs (raises RequestError)."""
        return self.parser.parse(body, max_instances or self.max_instances, allow_signature)

    def run(
        self, signature: str, inputs: dict[str, Any], locate_errors: bool = True
    ) -> dict[str, Any]:
        """Run a signature on parsed inputs; numpy outputs.

        An input the model cannot read (bytes that are not an image...) -> RequestError 400,
        naming the first bad instance when ``locate_errors`` (costs one call per instance).
        """
        try:
            return self.model.call(signature, **inputs)
        except CLIENT_ERRORS as err:
            where, cause = "an instance", err
            if locate_errors:
                where, cause = self._locate_error(signature, inputs) or (where, cause)
            raise RequestError(
                400, f"the model could not read {where}: {client_safe(cause)}"
            ) from None

    def _locate_error(self, signature: str, inputs: dict[str, Any]):
        """``("instance i", error)`` for the first instance the model cannot read alone, or None."""
        lists = {k: v for k, v in inputs.items() if isinstance(v, list)}
        n = len(next(iter(lists.values()))) if lists else 0
        if n < 2:
            return None
        for i in range(n):
            try:
                self.model.call(
                    signature, **{**inputs, **{k: v[i : i + 1] for k, v in lists.items()}}
                )
            except CLIENT_ERRORS as err:
                return f"instance {i}", err
        return None

    def rows(self, parsed: ParsedRequest, outputs: dict[str, Any]) -> list[dict]:
        """Outputs as plain JSON rows; a passed-through file name is shown as the client sent it."""
        rows = predict.outputs_to_rows(outputs, parsed.n)
        for row, names in zip(rows, parsed.client_names):
            for key, value in row.items():
                if isinstance(value, str) and value in names:
                    row[key] = names[value]
        return rows

    def predict(self, body: Any) -> dict:
        """The whole ``:predict`` route without HTTP (synchronous, no batching)."""
        parsed = self.parse(body)
        return {"predictions": self.rows(parsed, self.run(parsed.signature, parsed.inputs))}

    def explain(self, body: Any) -> dict:
        """The ``:explain`` route: attributions of the top (or requested) class per instance."""
        methods = explain_module()  # 501 first when this server cannot explain
        parsed = self.parse(body, max_instances=self.max_explain_instances, allow_signature=False)
        if parsed.signature not in EXPLAIN_SIGNATURES:
            raise RequestError(
                400, "explain takes file names or image bytes, one field per instance"
            )
        method, targets, options = explain_parameters(body, parsed.n, self.model.labels)
        return self.explainer.explain(methods, self.images(parsed), targets, method, options)

    def images(self, parsed: ParsedRequest) -> np.ndarray:
        """An explain request's images, preprocessed as the model's own signatures do."""
        if parsed.signature == "serving_default":
            filenames = {"filenames": parsed.inputs["filenames"]}
            return self.run("xai_preprocess", filenames)["input_images"]
        return decode_images(parsed.inputs["img_bytes"], int(self.model.img_size))

    def warm_up(self) -> None:
        """Run each file/bytes signature once on a tiny image (first calls are slow)."""
        png = tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "warm_up.png")
            Path(path).write_bytes(png)
            for sig, specs in self.served.items():
                inputs = warm_up_inputs(specs, path, png)
                if len(inputs) == len(specs):
                    self.model.call(sig, **inputs)


def warm_up_inputs(specs: dict[str, tuple], path: str, png: bytes) -> dict[str, list]:
    """One tiny instance for the inputs that can be filled without knowing the model."""
    inputs = {}
    for key, (kind, spec) in specs.items():
        if kind == "file":
            inputs[key] = [path]
        elif kind == "bytes":
            inputs[key] = [png]
        elif spec.shape.rank == 1:
            inputs[key] = [0]
    return inputs


def client_safe(err: Exception) -> str:
    """A TensorFlow error reduced to its reason, without server paths."""
    text = safe_io.short_error(err)
    if "Is a directory" in text:
        return "a file name is a directory"
    if "No such file" in text or "not found" in text.lower():
        return "a file could not be read"
    return text.split(";")[0][:160]


def decode_images(encoded: Sequence[bytes], size: int) -> np.ndarray:
    """Image bytes preprocessed by THE preprocessing function (as the from_bytes signature)."""
    images = []
    for i, data in enumerate(encoded):
        try:
            images.append(preprocess_image(tf.constant(data), size, size).numpy())
        except tf.errors.InvalidArgumentError:
            raise RequestError(400, f"instance {i}: the bytes are not a decodable image") from None
    return np.stack(images)


# ---- explanations --------------------------------------------------------------------


def explain_module():
    """``pmlv_utils.explain``, imported on the first ``:explain`` request (501 if it cannot be).

    Explanations are optional on a server, and the explanation libraries (saliency, shap,
    lime) are slow to import: a server that only predicts neither needs nor waits for them.
    """
    try:
        from .. import explain
    except ImportError as err:
        raise RequestError(501, f"explanations are not available on this server ({err})") from None
    return explain


def explain_parameters(body: dict, n: int, labels: Sequence[str]) -> tuple[str, Any, dict]:
    """``(method, target class indices or None, the method's other options)`` of a request."""
    options = body.get("parameters") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "'parameters' must be an object")
    options = dict(options)
    method = options.pop("method", "ig")
    targets = options.pop("target_classes", None)
    if targets is not None:
        targets = target_indices(targets, n, labels)
    return method, targets, options


def target_indices(targets: Any, n: int, labels: Sequence[str]) -> list[int]:
    """One class index per instance, from labels or indices."""
    if not isinstance(targets, list) or len(targets) != n:
        raise RequestError(
            400, f"'target_classes' must be a list with one class per instance ({n})"
        )
    out = []
    for t in targets:
        if isinstance(t, str) and t in labels:
            out.append(labels.index(t))
        elif isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(labels):
            out.append(t)
        else:
            raise RequestError(400, f"target class {t!r}: not a label {labels} or index")
    return out


class Explainer:
    """The model the ``:explain`` route explains: loaded on first use, one request at a time."""

    def __init__(self, model_dir: str, labels: Sequence[str]):
        self.model_dir, self.labels = model_dir, labels
        self._model = None
        self._lock = threading.Lock()

    def explain(self, methods, images, targets, method: str, options: dict) -> dict:
        """``{"predictions", "explanations"}`` of ``images`` (``methods``: pmlv_utils.explain)."""
        with self._lock:
            if self._model is None:
                self._model = methods.ExplainableModel.from_saved_model(self.model_dir)
            try:
                result = methods.explain(
                    images, targets, method=method, model=self._model, **options
                )
                probabilities = self._model.predict(images)
            except (ValueError, TypeError) as err:
                raise RequestError(400, f"explain: {err}") from None
        rows = explanation_rows(
            result, probabilities, targets, self.labels, methods.attribution_to_png_b64
        )
        return {"predictions": prediction_rows(probabilities, self.labels), "explanations": rows}


def label_of(k: int, labels: Sequence[str]) -> str:
    return labels[k] if k < len(labels) else str(k)


def prediction_rows(probabilities, labels: Sequence[str]) -> list[dict]:
    """The explained model's predictions, in the ``:predict`` route's row format."""
    rows = []
    for p in probabilities:
        k = int(p.argmax())
        rows.append(
            {
                "probability": [float(v) for v in p],
                "flower_type_int": k,
                "flower_type_str": label_of(k, labels),
            }
        )
    return rows


def explanation_rows(
    result, probabilities, targets, labels: Sequence[str], to_png: Callable[[np.ndarray], str]
) -> list[dict]:
    """Vertex-like ``explanations``: one attribution per instance, for its explained class."""
    chosen = (
        targets
        if targets is not None
        else result.extra.get("target_classes", probabilities.argmax(axis=1))
    )
    out = []
    for i, attribution in enumerate(result.attributions):
        k = int(np.asarray(chosen)[i])
        error = None if result.approx_error is None else float(result.approx_error[i])
        explained = {
            "outputName": "probability",
            "outputIndex": [k],
            "outputDisplayName": label_of(k, labels),
            "instanceOutputValue": float(probabilities[i, k]),
            "approximationError": error,
            "method": result.method,
            "featureAttributions": {"input_images": feature_attribution(attribution, to_png)},
        }
        out.append({"attributions": [explained]})
    return out


def feature_attribution(attribution, to_png: Callable[[np.ndarray], str]) -> dict:
    """An attribution map as a base64 PNG and the raw map (shape + base64 little-endian float32)."""
    a = np.ascontiguousarray(attribution, dtype="<f4")
    return {
        "b64_png": to_png(a),
        "shape": list(a.shape),
        "dtype": "float32",
        "b64": base64.b64encode(a.tobytes()).decode("ascii"),
    }
