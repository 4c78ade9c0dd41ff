"""The prediction service behind the routes: metadata, running signatures, explanations.

:class:`PredictionService` is independent of the web framework, so the same class can sit
behind another server (KServe, a Vertex custom container, a test) -- only
:func:`pmlv_utils.serving.app.create_app` knows FastAPI. Requests are parsed by
:class:`~pmlv_utils.serving.requests.RequestParser`, their images read and checked by
:class:`~pmlv_utils.serving.inputs.ImageLoader` (the checked bytes are what the model decodes),
and ``:explain`` answers computed by :class:`~pmlv_utils.serving.explaining.Explainer`.

Errors: whatever TensorFlow raises on a client's input is a 4xx (:func:`tf_error_status`);
only a fault of the server itself is a 500.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from .. import predict, safe_io
from ..preprocess import preprocess_image
from . import tfserving
from .explaining import Explainer, JobBudget, check_options, explain_parameters
from .inputs import CheckedCopies, ImageData, ImageLoader, Limits, call_checked
from .paths import PathPolicy
from .requests import (
    DEFAULT_MAX_EXPLAIN_INSTANCES,
    DEFAULT_MAX_INSTANCES,
    ParsedRequest,
    RequestError,
    RequestParser,
    served_inputs,
)
from .workers import PixelBudget

DEFAULT_MODEL_NAME = "flowers"
# TensorFlow's error classes -> the status of a client's input that raised it (any other
# OpError: 400). Everything the model sees was checked first, so these are the input's fault.
TF_ERROR_STATUS = (
    (tf.errors.NotFoundError, 404),
    (tf.errors.PermissionDeniedError, 403),
    (tf.errors.UnauthenticatedError, 403),
    (tf.errors.ResourceExhaustedError, 413),
)
CLIENT_ERRORS = (tf.errors.OpError, UnicodeError)
EXPLAIN_SIGNATURES = ("serving_default", "from_bytes")


def tf_error_status(err: Exception) -> int:
    """The 4xx status for an error TensorFlow (or decoding text) raised on a client's input."""
    for error_class, status in TF_ERROR_STATUS:
        if isinstance(err, error_class):
            return status
    return 400


class PredictionService:
    """The served model: parses requests (rows, columns) and runs signatures."""

    def __init__(
        self,
        model_dir: str,
        name: str = DEFAULT_MODEL_NAME,
        allowed_roots: Sequence[str] = (),
        max_instances: int = DEFAULT_MAX_INSTANCES,
        max_explain_instances: int = DEFAULT_MAX_EXPLAIN_INSTANCES,
        limits: Limits = Limits(),
    ):
        self.model_dir, self.name = str(model_dir), name
        self.model = predict.LoadedModel(model_dir)
        self.paths = PathPolicy(allowed_roots)
        self.max_instances = int(max_instances)
        self.max_explain_instances = int(max_explain_instances)
        specs = {sig: self.model.input_specs(sig) for sig in self.model.signatures}
        self.all_served = served_inputs(specs)
        self.parser = RequestParser(self.all_served, self.paths, self.max_instances)
        self.served = self.parser.served  # what :predict may call (no internal signatures)
        self.loader = ImageLoader(self.paths, limits)
        self.copies = CheckedCopies()
        self.decode_budget = PixelBudget(limits.max_request_pixels)
        self.explainer = Explainer(self.model_dir, self.model.labels)

    def metadata(self) -> dict:
        described = self.model.describe()
        return {
            "name": self.name,
            "ready": True,
            "labels": self.model.labels,
            "img_size": self.model.img_size,
            "default_signature": predict.DEFAULT_SIGNATURE,
            "signatures": {k: described[k] for k in self.all_served},
            "internal_signatures": sorted(self.parser.internal),
            **tfserving.model_status(),
        }

    def parse(
        self, body: Any, max_instances: int | None = None, allow_signature: bool = True
    ) -> ParsedRequest:
        """Validate a request body and turn it into signature inputs (raises RequestError)."""
        return self.parser.parse(body, max_instances or self.max_instances, allow_signature)

    def parse_predict(self, body: Any) -> ParsedRequest:
        """A ``:predict`` body: rows (``instances``) or TF Serving's columns (``inputs``)."""
        columnar = tfserving.is_columnar(body)
        parsed = self.parse(tfserving.columnar_to_rows(body, self.parser) if columnar else body)
        parsed.columnar = columnar
        return parsed

    def load(self, parsed: ParsedRequest) -> list[int]:
        """Read and check ``parsed``'s images in place; the pixels of each instance."""
        return self.loader.load(parsed, self.all_served[parsed.signature])

    def run(
        self, signature: str, inputs: dict[str, Any], locate_errors: bool = True
    ) -> dict[str, Any]:
        """Run a signature on loaded inputs; numpy outputs.

        An input the model cannot read -> RequestError 4xx (:func:`tf_error_status`), naming
        the first bad instance when ``locate_errors`` (costs one call per instance).
        """
        try:
            return self.call(signature, inputs)
        except CLIENT_ERRORS as err:
            where, cause = "an instance", err
            if locate_errors:
                where, cause = self._locate_error(signature, inputs) or (where, cause)
            raise RequestError(
                tf_error_status(cause), f"the model could not read {where}: {client_safe(cause)}"
            ) from None

    def call(self, signature: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """One model call on loaded inputs (the checked bytes: see :func:`call_checked`)."""
        return call_checked(self.model, self.copies, signature, self.all_served[signature], inputs)

    def _locate_error(self, signature: str, inputs: dict[str, Any]):
        """``("instance i", error)`` for the first instance the model cannot read alone, or None."""
        lists = {k: v for k, v in inputs.items() if isinstance(v, list)}
        n = len(next(iter(lists.values()))) if lists else 0
        if n < 2:
            return None
        for i in range(n):
            try:
                self.call(signature, {**inputs, **{k: v[i : i + 1] for k, v in lists.items()}})
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

    def answer(self, parsed: ParsedRequest, outputs: dict[str, Any]) -> dict:
        """The ``:predict`` answer: ``{"predictions": rows}``, or ``{"outputs": ...}`` (columns)."""
        return tfserving.answer(self.rows(parsed, outputs), outputs, parsed.columnar)

    def predict(self, body: Any) -> dict:
        """The whole ``:predict`` route without HTTP (synchronous, no batching)."""
        parsed = self.parse_predict(body)
        self.load(parsed)
        return self.answer(parsed, self.run(parsed.signature, parsed.inputs))

    def prepare_explain(self, body: Any) -> tuple:
        """An ``:explain`` body checked and its images read: the arguments of :meth:`explain`."""
        methods = explain_module()  # 501 first when this server cannot explain
        parsed = self.parse(body, max_instances=self.max_explain_instances, allow_signature=False)
        if parsed.signature not in EXPLAIN_SIGNATURES:
            raise RequestError(
                400, "explain takes file names or image bytes, one field per instance"
            )
        method, targets, options = explain_parameters(body, parsed.n, self.model.labels)
        options = check_options(options, methods, int(self.model.img_size))
        self.load(parsed)
        return methods, parsed, method, targets, options

    def explain(self, budget: JobBudget, methods, parsed, method, targets, options) -> dict:
        """The ``:explain`` answer: attributions of the top (or requested) class per instance."""
        images = self.images(parsed)
        budget.check()
        return self.explainer.explain(methods, budget, images, targets, method, options)

    def images(self, parsed: ParsedRequest) -> np.ndarray:
        """An explain request's images, preprocessed as the model's own signatures do."""
        (key,) = parsed.inputs
        checked: list[ImageData] = parsed.inputs[key]
        with self.decode_budget.hold(sum(d.pixels for d in checked)):
            return decode_images([d.data for d in checked], int(self.model.img_size))

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

    def close(self) -> None:
        self.copies.close()


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
        except CLIENT_ERRORS as err:
            raise RequestError(
                tf_error_status(err), f"instance {i}: the bytes are not a decodable image"
            ) from None
    return np.stack(images)


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
