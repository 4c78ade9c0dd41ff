"""A small REST model server for the exported flowers model (TF-Serving / KServe v1 / Vertex style).

Start it from a shell (binds 127.0.0.1 unless told otherwise)::

    python -m pmlv_utils.serving --model_dir EXPORT_DIR --allowed_root DATA_DIR [--port 8080]

or from a notebook / test::

    server = serving.start_server(export_dir, allowed_roots=[data_dir])   # free port, waits until ready
    server.predict(["daisy/1.jpg"])                                      # -> list of prediction rows
    server.stop()

Routes (``flowers`` is ``--model_name``):

- ``GET  /v1/models/flowers``          -> ready, labels, the signatures it serves (inputs/outputs)
- ``POST /v1/models/flowers:predict``  -> ``{"instances": [...], "signature_name": optional}``
  Each instance is a file name string, ``{"filenames": "..."}``, ``{"img_bytes": {"b64": "..."}}``,
  ``{"b64": "..."}``, ``{"filenames": "...", "key": 7}`` (passthrough), ... Without
  ``signature_name`` the signature is the one whose inputs match the instance's fields.
  Returns ``{"predictions": [{...plain JSON...}, ...]}``.
- ``POST /v1/models/flowers:explain``  -> the same instances (+ ``"parameters": {"method": "ig",
  "steps": 25, "target_classes": [...]}``); returns Vertex-like ``explanations`` with a base64 PNG
  of each attribution map, its ``approximationError`` and the raw map (shape + base64 float32).

Safety: a file name is read only if it resolves (symlinks, ``..``) inside an ``--allowed_root``;
other URL schemes are refused (``gs://`` only under an allowed ``gs://`` root). Every bad
request gets a 4xx JSON ``{"error": ...}``; the server stays up. Nothing from the wire is
unpickled. Concurrent requests are batched: while the model runs one batch, new requests
queue up and are run together as the next batch.

In a container (KServe custom predictor, Vertex custom container) run the same module with
``--host 0.0.0.0``; ``AIP_HTTP_PORT``, ``AIP_PREDICT_ROUTE``, ``AIP_HEALTH_ROUTE`` and
``AIP_STORAGE_URI`` (Vertex's environment) are honoured when set.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import binascii
import contextlib
import json
import os
import posixpath
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import predict as _predict
from . import safe_io

DEFAULT_MODEL_NAME = "flowers"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_BODY_BYTES = 16 * 2**20
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_EXPLAIN_INSTANCES = 8
DEFAULT_BATCH_WAIT_MS = 5.0
FILENAME_INPUTS = ("filenames", "filename")


class RequestError(Exception):
    """A client error: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# --------------------------------------------------------------------------------------
# Which files a request may read
# --------------------------------------------------------------------------------------


class PathPolicy:
    """Resolve a client's file name to a real path inside the allowed roots, or refuse it.

    Local names are resolved with ``os.path.realpath`` (symlinks and ``..`` followed) and
    must land inside a local root; relative names are taken relative to the first local
    root. ``gs://`` names must fall under an allowed ``gs://`` root (after removing ``..``).
    Any other ``scheme://`` is refused, since TensorFlow would happily open it.
    """

    def __init__(self, roots: Sequence[str | os.PathLike] = ()):
        self.local_roots: list[str] = []
        self.gcs_roots: list[str] = []
        for root in roots:
            root = str(root)
            if root.startswith("gs://"):
                self.gcs_roots.append(self._normalize_gcs(root).rstrip("/") + "/")
            elif "://" in root:
                raise ValueError(
                    f"allowed root {root!r}: only local folders and gs:// prefixes are supported"
                )
            else:
                real = os.path.realpath(root)
                if not os.path.isdir(real):
                    raise ValueError(f"allowed root {root!r} is not an existing folder")
                self.local_roots.append(real)

    @staticmethod
    def _normalize_gcs(name: str) -> str:
        rest = posixpath.normpath(name[len("gs://") :])
        if rest.startswith("..") or rest.startswith("/"):
            raise RequestError(403, f"{name!r}: not a valid gs:// path")
        return "gs://" + rest

    def resolve(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise RequestError(400, "a file name must be a non-empty string")
        if "\x00" in name:
            raise RequestError(400, "a file name may not contain NUL characters")
        if "://" in name:
            return self._resolve_url(name)
        if not self.local_roots:
            raise RequestError(
                403, f"{name!r}: this server reads no local files (no --allowed_root)"
            )
        path = name if os.path.isabs(name) else os.path.join(self.local_roots[0], name)
        real = os.path.realpath(path)
        if not any(os.path.commonpath([real, root]) == root for root in self.local_roots):
            raise RequestError(403, f"{name!r}: outside the server's allowed folders")
        if not os.path.isfile(real):
            raise RequestError(404, f"{name!r}: file not found")
        return real

    def _resolve_url(self, name: str) -> str:
        if not name.startswith("gs://"):
            raise RequestError(
                403,
                f"{name!r}: only local files{' and gs://' if self.gcs_roots else ''} are allowed",
            )
        if not self.gcs_roots:
            raise RequestError(403, f"{name!r}: gs:// paths are not allowed on this server")
        path = self._normalize_gcs(name)
        if not any(path.startswith(root) for root in self.gcs_roots):
            raise RequestError(403, f"{name!r}: outside the server's allowed gs:// prefixes")
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            raise RequestError(404, f"{name!r}: file not found")
        return path


# --------------------------------------------------------------------------------------
# The model behind the routes
# --------------------------------------------------------------------------------------


def _input_kind(name: str, spec) -> str | None:
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


@dataclass
class ParsedRequest:
    signature: str
    inputs: dict[str, list]  # input name -> one value per instance (resolved / decoded)
    n: int
    client_names: list[dict[str, str]] = field(
        default_factory=list
    )  # resolved path -> client's name


class PredictionService:
    """The served model: parses ``{"instances": ...}`` requests and runs signatures.

    Independent of the web framework, so the same class can sit behind another server
    (KServe, a Vertex custom container, a test) -- only :func:`create_app` knows FastAPI.
    """

    def __init__(
        self,
        model_dir: str,
        name: str = DEFAULT_MODEL_NAME,
        allowed_roots: Sequence[str] = (),
        max_instances: int = DEFAULT_MAX_INSTANCES,
        max_explain_instances: int = DEFAULT_MAX_EXPLAIN_INSTANCES,
    ):
        self.model_dir, self.name = str(model_dir), name
        self.model = _predict.LoadedModel(model_dir)
        self.paths = PathPolicy(allowed_roots)
        self.max_instances, self.max_explain_instances = (
            int(max_instances),
            int(max_explain_instances),
        )
        self.served = {}
        for sig in sorted(self.model.signatures):
            specs = self.model.input_specs(sig)
            kinds = {k: _input_kind(k, s) for k, s in specs.items()}
            if specs and all(kinds.values()):
                self.served[sig] = {k: (kinds[k], specs[k]) for k in specs}
        self._explainer = None
        self._explain_lock = threading.Lock()

    # ---- metadata --------------------------------------------------------------------
    def metadata(self) -> dict:
        described = self.model.describe()
        return {
            "name": self.name,
            "ready": True,
            "labels": self.model.labels,
            "img_size": self.model.img_size,
            "default_signature": _predict.DEFAULT_SIGNATURE,
            "signatures": {k: described[k] for k in self.served},
            "model_version_status": [{"version": "1", "state": "AVAILABLE"}],
        }

    # ---- parsing ---------------------------------------------------------------------
    def parse(
        self, body: Any, max_instances: int | None = None, allow_signature: bool = True
    ) -> ParsedRequest:
        """Validate a request body and turn it into signature inputs (raises RequestError)."""
        limit = max_instances or self.max_instances
        if not isinstance(body, dict):
            raise RequestError(
                400, 'the request body must be a JSON object like {"instances": [...]}'
            )
        if "instances" not in body:
            if "inputs" in body:
                raise RequestError(
                    400, "the columnar 'inputs' format is not supported; send 'instances' (rows)"
                )
            raise RequestError(400, f"missing 'instances'; got fields {sorted(body)[:10]}")
        unknown = set(body) - {"instances", "signature_name", "parameters"}
        if unknown:
            raise RequestError(400, f"unknown request fields {sorted(unknown)[:10]}")
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, "'instances' must be a non-empty list")
        if len(instances) > limit:
            raise RequestError(
                413, f"{len(instances)} instances in one request; this server takes at most {limit}"
            )
        signature = body.get("signature_name")
        if signature is not None and not allow_signature:
            raise RequestError(400, "'signature_name' is not used by this route")
        if signature is None:
            signature = self._infer_signature(instances[0])
        elif not isinstance(signature, str) or signature not in self.served:
            raise RequestError(
                400,
                f"unknown signature_name {signature!r}; this model serves {sorted(self.served)}",
            )
        specs = self.served[signature]
        inputs: dict[str, list] = {k: [] for k in specs}
        client_names: list[dict[str, str]] = []
        for i, instance in enumerate(instances):
            if len(specs) == 1 and not (isinstance(instance, dict) and set(instance) == set(specs)):
                instance = {next(iter(specs)): instance}  # bare value for a one-input signature
            if not isinstance(instance, dict):
                raise RequestError(
                    400, f"instance {i}: expected an object with fields {sorted(specs)}"
                )
            if set(instance) != set(specs):
                raise RequestError(
                    400,
                    f"instance {i}: signature {signature!r} expects fields {sorted(specs)}, "
                    f"got {sorted(map(str, instance))[:10]}",
                )
            names = {}
            for key, (kind, spec) in specs.items():
                value = self._convert(i, key, kind, spec, instance[key])
                if kind == "file":
                    names[value] = instance[key]
                inputs[key].append(value)
            client_names.append(names)
        for key, (kind, spec) in specs.items():
            if spec.shape.rank == 0:  # a scalar input: one value for the whole request
                if len(set(map(repr, inputs[key]))) > 1:
                    raise RequestError(
                        400, f"field {key!r} is a scalar: every instance must carry the same value"
                    )
                inputs[key] = inputs[key][0]
        return ParsedRequest(signature, inputs, len(instances), client_names)

    def _infer_signature(self, instance: Any) -> str:
        if isinstance(instance, str):
            return _predict.DEFAULT_SIGNATURE
        if isinstance(instance, dict):
            keys = set(instance)
            if keys == {"b64"}:
                keys = {"img_bytes"}
            candidates = [s for s, specs in self.served.items() if set(specs) == keys]
            if _predict.DEFAULT_SIGNATURE in candidates:
                return _predict.DEFAULT_SIGNATURE
            if candidates:
                return candidates[0]
            raise RequestError(
                400,
                f"instance 0: fields {sorted(map(str, keys))[:10]} match no signature; "
                f"inputs by signature: { {s: sorted(v) for s, v in self.served.items()} }",
            )
        raise RequestError(
            400, "instance 0: expected a file name string or an object of named inputs"
        )

    def _convert(self, i: int, key: str, kind: str, spec, value: Any):
        where = f"instance {i}, field {key!r}"
        if kind == "file":
            if not isinstance(value, str):
                raise RequestError(400, f"{where}: expected a file name string")
            try:
                return self.paths.resolve(value)
            except RequestError as err:
                raise RequestError(err.status, f"{where}: {err.message}") from None
        if kind == "bytes":
            if not (
                isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str)
            ):
                raise RequestError(
                    400, f'{where}: bytes must be sent as {{"b64": "<base64 string>"}}'
                )
            try:
                data = base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(400, f"{where}: invalid base64") from None
            if not data:
                raise RequestError(400, f"{where}: empty image bytes")
            return data
        import numpy as np  # kind == "number"

        if isinstance(value, (str, dict)) or value is None:
            raise RequestError(400, f"{where}: expected a number or nested list of numbers")
        try:
            array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
        except (ValueError, TypeError, OverflowError):
            raise RequestError(400, f"{where}: not a {spec.dtype.name} value") from None
        expected = spec.shape[1:] if spec.shape.rank else spec.shape
        if not expected.is_compatible_with(array.shape):
            raise RequestError(
                400, f"{where}: shape {list(array.shape)} does not fit {expected.as_list()}"
            )
        return array

    # ---- running ---------------------------------------------------------------------
    def run(
        self, signature: str, inputs: dict[str, Any], locate_errors: bool = True
    ) -> dict[str, Any]:
        """Run a signature on parsed inputs; numpy outputs.

        An input the model cannot read (bytes that are not an image...) -> RequestError 400,
        naming the first bad instance when ``locate_errors`` (costs one call per instance).
        """
        import tensorflow as tf

        client_errors = (
            tf.errors.InvalidArgumentError,
            tf.errors.FailedPreconditionError,
            tf.errors.NotFoundError,
        )
        try:
            return self.model.call(signature, **inputs)
        except client_errors:
            where = "an instance"
            lists = {k: v for k, v in inputs.items() if isinstance(v, list)}
            n = len(next(iter(lists.values()))) if lists else 0
            if locate_errors and n > 1:
                for i in range(n):
                    try:
                        self.model.call(
                            signature, **{**inputs, **{k: v[i : i + 1] for k, v in lists.items()}}
                        )
                    except client_errors as one:
                        where, err = f"instance {i}", one
                        break
            raise RequestError(
                400, f"the model could not read {where}: {_client_safe(err)}"
            ) from None

    def rows(self, parsed: ParsedRequest, outputs: dict[str, Any]) -> list[dict]:
        """Outputs as plain JSON rows; a passed-through file name is shown as the client sent it."""
        rows = _predict.outputs_to_rows(outputs, parsed.n)
        for row, names in zip(rows, parsed.client_names):
            for key, value in row.items():
                if isinstance(value, str) and value in names:
                    row[key] = names[value]
        return rows

    def predict(self, body: Any) -> dict:
        """The whole ``:predict`` route without HTTP (synchronous, no batching)."""
        parsed = self.parse(body)
        return {"predictions": self.rows(parsed, self.run(parsed.signature, parsed.inputs))}

    # ---- explanations ----------------------------------------------------------------
    def explain(self, body: Any) -> dict:
        """The ``:explain`` route: attributions of the top (or requested) class per instance."""
        try:
            from . import explain as _explain
        except ImportError as err:
            raise RequestError(
                501, f"explanations are not available on this server ({err})"
            ) from None
        parsed = self.parse(body, max_instances=self.max_explain_instances, allow_signature=False)
        if parsed.signature not in ("serving_default", "from_bytes"):
            raise RequestError(
                400, "explain takes file names or image bytes, one field per instance"
            )
        options = body.get("parameters") or {}
        if not isinstance(options, dict):
            raise RequestError(400, "'parameters' must be an object")
        options = dict(options)
        method = options.pop("method", "ig")
        targets = options.pop("target_classes", None)
        if targets is not None:
            targets = self._target_indices(targets, parsed.n)
        images = self._images(parsed)
        with self._explain_lock:
            if self._explainer is None:
                self._explainer = _explain.ExplainableModel.from_saved_model(self.model_dir)
            try:
                result = _explain.explain(
                    images, targets, method=method, model=self._explainer, **options
                )
                probabilities = self._explainer.predict(images)
            except (ValueError, TypeError) as err:
                raise RequestError(400, f"explain: {err}") from None
        return {
            "predictions": self._prediction_rows(probabilities),
            "explanations": self._explanation_rows(result, probabilities, targets, _explain),
        }

    def _target_indices(self, targets: Any, n: int) -> list[int]:
        if not isinstance(targets, list) or len(targets) != n:
            raise RequestError(
                400, f"'target_classes' must be a list with one class per instance ({n})"
            )
        out = []
        for t in targets:
            if isinstance(t, str) and t in self.model.labels:
                out.append(self.model.labels.index(t))
            elif isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(self.model.labels):
                out.append(t)
            else:
                raise RequestError(
                    400, f"target class {t!r}: not a label {self.model.labels} or index"
                )
        return out

    def _images(self, parsed: ParsedRequest):
        import numpy as np
        import tensorflow as tf

        if parsed.signature == "serving_default":
            return self.run("xai_preprocess", {"filenames": parsed.inputs["filenames"]})[
                "input_images"
            ]
        from .preprocess import preprocess_image  # the same function the from_bytes signature uses

        size = int(self.model.img_size)
        images = []
        for i, data in enumerate(parsed.inputs["img_bytes"]):
            try:
                images.append(preprocess_image(tf.constant(data), size, size).numpy())
            except tf.errors.InvalidArgumentError:
                raise RequestError(
                    400, f"instance {i}: the bytes are not a decodable image"
                ) from None
        return np.stack(images)

    def _prediction_rows(self, probabilities) -> list[dict]:
        labels = self.model.labels
        rows = []
        for p in probabilities:
            k = int(p.argmax())
            rows.append(
                {
                    "probability": [float(v) for v in p],
                    "flower_type_int": k,
                    "flower_type_str": labels[k] if k < len(labels) else str(k),
                }
            )
        return rows

    def _explanation_rows(self, result, probabilities, targets, explain_module) -> list[dict]:
        import numpy as np

        chosen = (
            targets
            if targets is not None
            else result.extra.get("target_classes", probabilities.argmax(axis=1))
        )
        out = []
        for i, attribution in enumerate(result.attributions):
            k = int(np.asarray(chosen)[i])
            error = None if result.approx_error is None else float(result.approx_error[i])
            a = np.ascontiguousarray(attribution, dtype="<f4")
            out.append(
                {
                    "attributions": [
                        {
                            "outputName": "probability",
                            "outputIndex": [k],
                            "outputDisplayName": self.model.labels[k]
                            if k < len(self.model.labels)
                            else str(k),
                            "instanceOutputValue": float(probabilities[i, k]),
                            "approximationError": error,
                            "method": result.method,
                            "featureAttributions": {
                                "input_images": {
                                    "b64_png": explain_module.attribution_to_png_b64(a),
                                    "shape": list(a.shape),
                                    "dtype": "float32",
                                    "b64": base64.b64encode(a.tobytes()).decode("ascii"),
                                }
                            },
                        }
                    ]
                }
            )
        return out

    def warm_up(self) -> None:
        """Run each file/bytes signature once on a tiny image (first calls are slow)."""
        import tensorflow as tf

        png = tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "warm_up.png")
            Path(path).write_bytes(png)
            for sig, specs in self.served.items():
                inputs = {}
                for key, (kind, spec) in specs.items():
                    if kind == "file":
                        inputs[key] = [path]
                    elif kind == "bytes":
                        inputs[key] = [png]
                    elif spec.shape.rank == 1:
                        inputs[key] = [0]
                if len(inputs) == len(specs):
                    self.model.call(sig, **inputs)


def _client_safe(err: Exception) -> str:
    """A TensorFlow error reduced to its reason, without server paths."""
    text = safe_io.short_error(err)
    if "Is a directory" in text:
        return "a file name is a directory"
    if "No such file" in text or "not found" in text.lower():
        return "a file could not be read"
    return text.split(";")[0][:160]


# --------------------------------------------------------------------------------------
# Batching concurrent requests
# --------------------------------------------------------------------------------------


@dataclass
class _Job:
    signature: str
    inputs: dict[str, Any]
    n: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future

    @property
    def key(self):  # jobs with the same key can be concatenated
        scalars = tuple(
            sorted((k, repr(v)) for k, v in self.inputs.items() if not isinstance(v, list))
        )
        return self.signature, scalars


class MicroBatcher:
    """One model thread; requests that arrive together are run as one batch.

    The thread takes everything queued. If more predict requests are arriving (counted by
    :meth:`tracking`: received and being read or parsed, not yet queued) it waits up to
    ``max_wait_ms`` for them, so a busy server merges concurrent requests into larger, cheaper
    model calls. A lone request never waits: nothing else is arriving.
    """

    def __init__(
        self,
        model: PredictionService,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    ):
        self.model, self.max_batch_size = model, int(max_batch_size)
        self.max_wait_s = max(0.0, float(max_wait_ms)) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self.calls = 0  # model calls, and instances they ran: instances / calls = mean batch size
        self.instances = 0
        self.arriving = 0  # predict requests received and not yet queued
        self._thread = threading.Thread(target=self._loop, name="model-batcher", daemon=True)
        self._thread.start()

    async def submit(self, signature: str, inputs: dict[str, Any], n: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(signature, inputs, n, loop, future))
        return await future

    @contextlib.contextmanager
    def tracking(self):
        """Count a request as arriving while it is read and parsed (before :meth:`submit`)."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    def close(self) -> None:
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, size = [job], job.n
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    wait = deadline - time.monotonic()
                    if self.arriving <= 0 or wait <= 0:
                        break  # nobody else is coming (soon enough)
                    try:
                        more = self._queue.get(timeout=min(wait, 0.0005))
                    except queue.Empty:
                        continue
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
                size += more.n
            groups: dict[Any, list[_Job]] = {}
            for j in jobs:
                groups.setdefault(j.key, []).append(j)
            for group in groups.values():
                self._run_group(group)

    def _run_group(self, jobs: list[_Job]) -> None:
        if len(jobs) > 1:
            merged = {
                k: (
                    sum((j.inputs[k] for j in jobs), [])
                    if isinstance(jobs[0].inputs[k], list)
                    else jobs[0].inputs[k]
                )
                for k in jobs[0].inputs
            }
            try:
                outputs = self._call(
                    jobs[0].signature, merged, sum(j.n for j in jobs), locate_errors=False
                )
            except Exception:  # one bad request must not fail the others: run each alone
                for j in jobs:
                    self._run_group([j])
                return
            offset = 0
            for j in jobs:
                _resolve(
                    j,
                    {
                        k: (v[offset : offset + j.n] if getattr(v, "ndim", 0) else v)
                        for k, v in outputs.items()
                    },
                )
                offset += j.n
            return
        job = jobs[0]
        try:
            _resolve(job, self._call(job.signature, job.inputs, job.n))
        except Exception as err:  # noqa: BLE001 -- handed to the request, which answers 4xx/5xx
            _resolve(job, error=err)

    def _call(self, signature, inputs, n, locate_errors=True):
        outputs = self.model.run(signature, inputs, locate_errors)
        self.calls += 1
        self.instances += n
        return outputs


def _resolve(job: _Job, result=None, error: Exception | None = None) -> None:
    def settle():
        if job.future.done():  # the client went away
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    job.loop.call_soon_threadsafe(settle)


# --------------------------------------------------------------------------------------
# The FastAPI app
# --------------------------------------------------------------------------------------


async def read_body(request, limit: int) -> bytes:
    """The request body, or RequestError 413 once it exceeds ``limit`` bytes."""
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


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "the request body is not valid JSON") from None
    except RecursionError:
        raise RequestError(400, "the request JSON is nested too deeply") from None


def create_app(
    model_dir: str,
    model_name: str = DEFAULT_MODEL_NAME,
    allowed_roots: Sequence[str] = (),
    max_instances: int = DEFAULT_MAX_INSTANCES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    warm_up: bool = True,
    extra_predict_routes: Sequence[str] = (),
    health_routes: Sequence[str] = (),
):
    """The ASGI app: loads the model (and warms it up) before it is returned."""
    import contextlib

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    model = PredictionService(model_dir, model_name, allowed_roots, max_instances)
    if warm_up:
        model.warm_up()
    batcher = MicroBatcher(model, max_batch_size, batch_wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()

    app = FastAPI(
        title=f"{model_name} model server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.model, app.state.batcher = model, batcher

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def json_response(obj) -> Response:
        return Response(json.dumps(obj), media_type="application/json")

    @app.exception_handler(RequestError)
    async def _request_error(request, err: RequestError):
        return error(err.status, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, err):
        return error(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def _server_error(request, err):  # a bug of ours: answer 500, stay up
        return error(500, f"internal error: {type(err).__name__}")

    # Plain Starlette endpoints (request in, Response out): the body is parsed by us, with limits.
    async def status(request):
        stats = {"model_calls": batcher.calls, "instances": batcher.instances}
        return json_response({**model.metadata(), "batching": stats})

    async def predict(request):
        with batcher.tracking():
            body = parse_json(await read_body(request, max_body_bytes))
            parsed = model.parse(body)
        outputs = await batcher.submit(parsed.signature, parsed.inputs, parsed.n)
        return json_response({"predictions": model.rows(parsed, outputs)})

    async def explain(request):
        body = parse_json(await read_body(request, max_body_bytes))
        return json_response(await run_in_threadpool(model.explain, body))

    async def health(request):
        return json_response({"ready": True})

    base = f"/v1/models/{model_name}"
    app.add_route(base, status, methods=["GET"])
    app.add_route(f"{base}:predict", predict, methods=["POST"])
    app.add_route(f"{base}:explain", explain, methods=["POST"])
    for route in extra_predict_routes:
        app.add_route(route, predict, methods=["POST"])
    for route in health_routes:
        app.add_route(route, health, methods=["GET"])

    return app


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    ap = argparse.ArgumentParser(
        prog="python -m pmlv_utils.serving", description=__doc__.split("\n")[0]
    )
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
    import uvicorn

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


# --------------------------------------------------------------------------------------
# Starting / stopping a server from a notebook or a test
# --------------------------------------------------------------------------------------


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerHandle:
    """A model server running as a subprocess: ``.url``, ``.predict(...)``, ``.stop()``."""

    def __init__(
        self, process: subprocess.Popen, host: str, port: int, model_name: str, log_path: str
    ):
        self.process, self.host, self.port, self.model_name, self.log_path = (
            process,
            host,
            port,
            model_name,
            log_path,
        )
        self.url = f"http://{host}:{port}"

    @property
    def model_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}"

    @property
    def predict_url(self) -> str:
        return f"{self.model_url}:predict"

    @property
    def explain_url(self) -> str:
        return f"{self.model_url}:explain"

    def running(self) -> bool:
        return self.process.poll() is None

    def post(self, route: str, body: Any, timeout: float = 120.0):
        """POST a JSON body to ``:predict`` / ``:explain``; returns the ``requests`` response."""
        import requests

        url = {"predict": self.predict_url, "explain": self.explain_url}.get(route, route)
        return requests.post(url, json=body, timeout=timeout)

    def predict(self, instances: list, signature_name: str | None = None) -> list[dict]:
        """The predictions for ``instances``; raises RuntimeError with the server's message on 4xx/5xx."""
        body: dict[str, Any] = {"instances": instances}
        if signature_name:
            body["signature_name"] = signature_name
        resp = self.post("predict", body)
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {safe_io.http_error_text(resp)}")
        return resp.json()["predictions"]

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"ServerHandle(url={self.url!r}, running={self.running()})"


def start_server(
    model_dir: str | os.PathLike,
    allowed_roots: Sequence[str | os.PathLike] = (),
    port: int | None = None,
    host: str = DEFAULT_HOST,
    model_name: str = DEFAULT_MODEL_NAME,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    extra_args: Sequence[str] = (),
    timeout: float = 180.0,
    env: dict | None = None,
) -> ServerHandle:
    """Start ``python -m pmlv_utils.serving`` on a free port and wait until it answers."""
    port = port or free_port(host)
    cmd = [
        sys.executable,
        "-m",
        "pmlv_utils.serving",
        "--model_dir",
        str(model_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--model_name",
        model_name,
        "--max_instances",
        str(max_instances),
        "--max_body_bytes",
        str(max_body_bytes),
        *extra_args,
    ]
    for root in allowed_roots:
        cmd += ["--allowed_root", str(root)]
    log = tempfile.NamedTemporaryFile(prefix="pmlv_server_", suffix=".log", delete=False)
    child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    package_root = str(Path(__file__).resolve().parents[1])
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, child_env.get("PYTHONPATH")) if p
    )
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env)
    handle = ServerHandle(process, host, port, model_name, log.name)
    atexit.register(handle.stop)
    wait_until_ready(
        process, handle.model_url, timeout, "the model server", handle.log_tail, handle.stop
    )
    return handle


def wait_until_ready(
    process: subprocess.Popen,
    url: str,
    timeout: float,
    name: str,
    log_tail: Callable[[], str],
    stop: Callable[[], None],
    poll_s: float = 0.3,
) -> None:
    """Poll ``url`` until it answers 200; raise (with the log's tail) if ``process`` exits or time runs out."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}:\n{log_tail()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(poll_s)
    stop()
    raise TimeoutError(f"{name} was not ready after {timeout:.0f} s:\n{log_tail()}")


# --------------------------------------------------------------------------------------
# Clients: load test and the bad-request battery
# --------------------------------------------------------------------------------------


def load_test(
    url: str, body: dict, clients: int, requests_total: int, timeout: float = 60.0
) -> dict:
    """POST ``body`` ``requests_total`` times from ``clients`` threads (keep-alive sessions).

    Returns requests/s, images/s (instances per request x requests/s), p50/p99 latency (ms)
    and the count of non-200 answers.
    """
    import numpy as np
    import requests

    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    per_client = [
        requests_total // clients + (1 if i < requests_total % clients else 0)
        for i in range(clients)
    ]
    barrier = threading.Barrier(clients + 1)

    def client(n):
        latencies, failures = [], 0
        with requests.Session() as session:
            session.post(url, data=data, headers=headers, timeout=timeout)  # connect + warm up
            barrier.wait()
            for _ in range(n):
                t = time.perf_counter()
                resp = session.post(url, data=data, headers=headers, timeout=timeout)
                latencies.append(time.perf_counter() - t)
                failures += resp.status_code != 200
        return latencies, failures

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, n) for n in per_client]
        barrier.wait()
        start = time.perf_counter()
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - start
    latencies = np.array([x for lat, _ in results for x in lat]) * 1000
    instances = len(body.get("instances", []))
    return {
        "clients": clients,
        "requests": int(latencies.size),
        "instances_per_request": instances,
        "errors": int(sum(f for _, f in results)),
        "seconds": round(seconds, 3),
        "requests_per_s": round(latencies.size / seconds, 1),
        "images_per_s": round(latencies.size * instances / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
    }


def predict_jsonl(
    predict_url: str,
    input_jsonl: str | os.PathLike,
    output_jsonl: str | os.PathLike,
    batch_size: int = 32,
    signature_name: str | None = None,
    timeout: float = 120.0,
) -> dict:
    """Batch prediction from a JSON-lines file of instances (Vertex batch prediction's input format).

    Posts ``batch_size`` instances per request and writes one ``{"instance", "prediction"}`` line
    per input line (Vertex's output format); an instance the server rejects is written with
    ``"error"`` instead of ``"prediction"`` (its batch is retried one instance at a time).
    Returns ``{"instances", "predictions", "errors", "requests", "seconds"}``.
    """
    import requests

    lines = [ln for ln in Path(input_jsonl).read_text().splitlines() if ln.strip()]
    instances = [json.loads(ln) for ln in lines]
    counts = {"instances": len(instances), "predictions": 0, "errors": 0, "requests": 0}
    start = time.perf_counter()

    def post(chunk):
        body: dict[str, Any] = {"instances": chunk}
        if signature_name:
            body["signature_name"] = signature_name
        counts["requests"] += 1
        return session.post(predict_url, json=body, timeout=timeout)

    with requests.Session() as session, open(output_jsonl, "w") as out:
        for i in range(0, len(instances), batch_size):
            chunk = instances[i : i + batch_size]
            resp = post(chunk)
            if resp.status_code == 200:
                answers = [{"prediction": p} for p in resp.json()["predictions"]]
            elif 400 <= resp.status_code < 500:
                answers = []
                for instance in chunk:
                    one = post([instance]) if len(chunk) > 1 else resp
                    answers.append(
                        {"prediction": one.json()["predictions"][0]}
                        if one.status_code == 200
                        else {"error": f"HTTP {one.status_code}: {safe_io.http_error_text(one)}"}
                    )
            else:
                resp.raise_for_status()
            for instance, answer in zip(chunk, answers):
                counts["predictions" if "prediction" in answer else "errors"] += 1
                out.write(json.dumps({"instance": instance, **answer}) + "\n")
    counts["seconds"] = round(time.perf_counter() - start, 3)
    return counts


def plot_load_test(
    rows: Sequence[dict], in_memory_images_per_s: float | None = None, title: str | None = None
):
    """Throughput (images/s) and p50/p99 latency against the number of concurrent clients."""
    import matplotlib.pyplot as plt

    clients = [r["clients"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(clients, [r["images_per_s"] for r in rows], "o-", label="REST server")
    if in_memory_images_per_s:
        left.axhline(
            in_memory_images_per_s, color="gray", linestyle="--", label="in memory, batched"
        )
        left.axhline(
            0.7 * in_memory_images_per_s, color="gray", linestyle=":", label="goal: 0.7 x in memory"
        )
    left.set(xlabel="concurrent clients", ylabel="images / s", title="throughput", xticks=clients)
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.plot(clients, [r["p50_ms"] for r in rows], "o-", label="p50")
    right.plot(clients, [r["p99_ms"] for r in rows], "s--", label="p99")
    right.set(
        xlabel="concurrent clients",
        ylabel="latency per request (ms)",
        title="latency",
        xticks=clients,
    )
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@dataclass
class BadRequest:
    case: str
    body: bytes
    expected: int
    method: str = "POST"
    route: str = "predict"
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})


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

    def body(obj) -> bytes:
        return json.dumps(obj).encode()

    inside = str(inside_file)
    up = os.path.relpath(str(outside_file), os.path.dirname(inside))
    b64_text = base64.b64encode(b"this is not an image").decode()
    cases = [
        BadRequest("invalid JSON", b'{"instances": [', 400),
        BadRequest("body is a list", body([inside]), 400),
        BadRequest("no instances", body({"signature_name": "serving_default"}), 400),
        BadRequest("empty instances", body({"instances": []}), 400),
        BadRequest("columnar 'inputs'", body({"inputs": {"filenames": [inside]}}), 400),
        BadRequest("wrong field name", body({"instances": [{"filename_typo": inside}]}), 400),
        BadRequest("number as file name", body({"instances": [{"filenames": 42}]}), 400),
        BadRequest(
            "unknown signature", body({"signature_name": "no_such_sig", "instances": [inside]}), 400
        ),
        BadRequest(
            "bad base64", body({"instances": [{"img_bytes": {"b64": "@@not base64@@"}}]}), 400
        ),
        BadRequest(
            "bytes not an image", body({"instances": [{"img_bytes": {"b64": b64_text}}]}), 400
        ),
        BadRequest("bytes without b64", body({"instances": [{"img_bytes": "raw string"}]}), 400),
        BadRequest("missing file", body({"instances": [inside + ".missing.jpg"]}), 404),
        BadRequest(
            "path traversal ../",
            body({"instances": [os.path.join(os.path.dirname(inside), up)]}),
            403,
        ),
        BadRequest("absolute path outside", body({"instances": [str(outside_file)]}), 403),
        BadRequest("system file", body({"instances": ["/etc/passwd"]}), 403),
        BadRequest("gs:// not allowed", body({"instances": ["gs://some-bucket/flower.jpg"]}), 403),
        BadRequest("other URL scheme", body({"instances": ["ram://x/flower.jpg"]}), 403),
        BadRequest("NUL in file name", body({"instances": [inside + "\u0000.jpg"]}), 400),
        BadRequest("too many instances", body({"instances": [inside] * (max_instances + 1)}), 413),
        BadRequest(
            "body over size limit", b'{"instances": ["' + b"a" * (max_body_bytes + 10) + b'"]}', 413
        ),
        BadRequest("deeply nested JSON", b"[" * 5000 + b"]" * 5000, 400),
        BadRequest("unknown route", b"{}", 404, route="/v1/models/flowers:nothing"),
        BadRequest("GET on :predict", b"", 405, method="GET"),
    ]
    if symlink_out:
        cases.insert(
            14, BadRequest("symlink out of root", body({"instances": [str(symlink_out)]}), 403)
        )
    return cases


def run_request_battery(server: ServerHandle, cases: Sequence[BadRequest]) -> list[dict]:
    """Send each bad request; one row per case with the expected and actual status."""
    import requests

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
    import requests

    try:
        return requests.get(server.model_url, timeout=10).status_code
    except requests.RequestException:
        return None


if __name__ == "__main__":
    main()
