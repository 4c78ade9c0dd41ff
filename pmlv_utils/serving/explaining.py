"""The ``:explain`` route's cost bounds: checked options, a time budget, a busy signal.

- :func:`check_options`: every option value within a range (the 400 message names it), so
  no request asks for millions of steps or samples (:data:`OPTION_RULES`).
- :class:`ExplainQueue`: explanations run one at a time on their own daemon thread (never on
  the model thread of ``:predict``), with at most ``max_pending`` accepted at once; one more
  is answered 429 with ``Retry-After``. Each has a time budget (:class:`JobBudget`): the
  model functions the explainer calls check it before and after every batch, so a long
  explanation stops with a 422 when its time is up, and at once when the server shuts down.
- :class:`Explainer`: the explained model (loaded on first use) and the Vertex-like rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from .requests import RequestError
from .workers import DaemonExecutor

DEFAULT_EXPLAIN_TIMEOUT_S = 120.0
DEFAULT_MAX_PENDING_EXPLANATIONS = 2
# option -> (kind, low, high); "choice" options take their values from pmlv_utils.explain.
OPTION_RULES: dict[str, tuple] = {
    "steps": ("int", 1, 512),  # IG / XRAI steps (also the Gauss-Legendre order)
    "num_samples": ("int", 1, 5000),
    "n_segments": ("int", 2, 500),
    "batch_size": ("int", 1, 256),
    "seed": ("int", 0, 2**32 - 1),
    "max_anchor_size": ("int_or_none", 1, 100),
    "threshold": ("float", 0.0, 1.0),
    "p_sample": ("float", 0.0, 1.0),
    "integration": ("choice", "IG_INTEGRATION"),
    "hide": ("choice", "HIDE_MODES"),
    "algorithm": ("choice", ("full", "fast")),
    "baseline": ("baseline", 1, 1),
    "baselines": ("baseline", 1, 4),
}


def check_options(options: dict, methods, img_size: int) -> dict:
    """``options`` with each value checked against :data:`OPTION_RULES` (RequestError 400);
    baselines become float32 arrays. Unknown names are left to ``methods.explain``."""
    checked = {}
    for name, value in options.items():
        rule = OPTION_RULES.get(name)
        checked[name] = value if rule is None else _checked(name, value, rule, methods, img_size)
    return checked


def _checked(name: str, value: Any, rule: tuple, methods, img_size: int):
    kind, low, high = (*rule, None)[:3]
    if kind == "int_or_none" and value is None:
        return None
    if kind in ("int", "int_or_none"):
        if type(value) is not int or not low <= value <= high:
            raise RequestError(
                400,
                f"explain: {name}: expected an integer from {low} to {high}, got {_show(value)}",
            )
        return value
    if kind == "float":
        if type(value) not in (int, float) or not low < value <= high:
            raise RequestError(
                400,
                f"explain: {name}: expected a number above {low} and at most {high}, "
                f"got {_show(value)}",
            )
        return float(value)
    if kind == "choice":
        choices = tuple(getattr(methods, low)) if isinstance(low, str) else low
        if value not in choices:
            raise RequestError(
                400, f"explain: {name}: expected one of {choices}, got {_show(value)}"
            )
        return value
    return _baselines(name, value, high, methods, img_size)


def _baselines(name: str, value: Any, most: int, methods, img_size: int):
    """A baseline name or image [H, W, 3]; for ``baselines`` a list of 1..``most`` of them."""
    many = name == "baselines"
    items = value if many and isinstance(value, list) else [value]
    if many and not (isinstance(value, (list, str)) and 1 <= len(items) <= most):
        raise RequestError(400, f"explain: {name}: expected a list of 1 to {most} baselines")
    shape = (img_size, img_size, 3)
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in methods.IG_BASELINES:
                raise RequestError(
                    400,
                    f"explain: {name}: expected one of {tuple(methods.IG_BASELINES)} "
                    f"or an image of shape {list(shape)}, got {_show(item)}",
                )
            out.append(item)
            continue
        try:
            array = np.asarray(item, dtype=np.float32)
        except (ValueError, TypeError):
            array = None
        if array is None or array.shape != shape or not np.isfinite(array).all():
            raise RequestError(
                400,
                f"explain: {name}: expected one of {tuple(methods.IG_BASELINES)} or an image "
                f"of shape {list(shape)} with finite values",
            )
        out.append(array)
    return out if many and isinstance(value, list) else out[0]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class ExplainStopped(BaseException):
    """Raised inside an explanation when its time is up or the server stops (a BaseException,
    so that no library's ``except Exception`` swallows it)."""


class JobBudget:
    """One explanation's deadline and cancel flag; :meth:`check` raises :class:`ExplainStopped`."""

    def __init__(self, timeout_s: float):
        self.timeout_s = float(timeout_s)
        self.deadline = math.inf
        self.cancelled = threading.Event()

    def start(self) -> None:
        self.deadline = time.monotonic() + self.timeout_s

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise ExplainStopped("cancelled")
        if time.monotonic() > self.deadline:
            raise ExplainStopped("time budget")

    def guard(self, fn: Callable) -> Callable:
        """``fn`` checking the budget before and after each call."""

        def guarded(*args, **kwargs):
            self.check()
            out = fn(*args, **kwargs)
            self.check()
            return out

        return guarded


class ExplainQueue:
    """Explanations one at a time on a daemon thread, ``max_pending`` accepted at once."""

    def __init__(
        self,
        timeout_s: float = DEFAULT_EXPLAIN_TIMEOUT_S,
        max_pending: int = DEFAULT_MAX_PENDING_EXPLANATIONS,
    ):
        self.timeout_s, self.max_pending = float(timeout_s), int(max_pending)
        self._pool = DaemonExecutor(1, "explainer")
        self._jobs: list[JobBudget] = []  # accepted, running or waiting (event loop only)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the running job's remaining time budget."""
        left = [j.remaining() for j in self._jobs if j.deadline < math.inf]
        return max(1, math.ceil(min(left) if left else self.timeout_s))

    def check_free(self) -> None:
        """RequestError 429 (with Retry-After) when ``max_pending`` explanations are accepted."""
        if len(self._jobs) >= self.max_pending:
            raise RequestError(
                429,
                f"the explainer is busy ({len(self._jobs)} explanations accepted); retry later",
                {"Retry-After": str(self.retry_after())},
            )

    @contextlib.contextmanager
    def slot(self):
        """A place among the ``max_pending`` (429 when none is free), held until the block ends.

        Taken before the body is read, so requests that parse slowly cannot overtake the limit.
        """
        self.check_free()
        budget = JobBudget(self.timeout_s)
        self._jobs.append(budget)
        try:
            yield budget
        finally:
            self._jobs.remove(budget)

    async def run(self, fn: Callable, *args: Any, budget: JobBudget | None = None) -> Any:
        """``fn(budget, *args)`` on the explainer thread, in ``budget``'s slot or a new one."""
        if budget is None:
            with self.slot() as budget:
                return await self._run(budget, fn, args)
        return await self._run(budget, fn, args)

    async def _run(self, budget: JobBudget, fn: Callable, args: tuple) -> Any:
        try:
            return await self._pool.run(self._timed, budget, fn, args)
        except asyncio.CancelledError:
            budget.cancelled.set()
            raise

    @staticmethod
    def _timed(budget: JobBudget, fn: Callable, args: tuple) -> Any:
        budget.start()
        budget.check()
        return fn(budget, *args)

    def close(self) -> None:
        """Stop every explanation at its next model call."""
        for job in list(self._jobs):
            job.cancelled.set()
        self._pool.close()


class Explainer:
    """The model the ``:explain`` route explains: loaded on first use, guarded per request."""

    def __init__(self, model_dir: str, labels: Sequence[str]):
        self.model_dir, self.labels = model_dir, labels
        self._functions: dict | None = None
        self._lock = threading.Lock()

    def model(self, methods, budget: JobBudget):
        """An ExplainableModel whose model functions check ``budget`` on every batch."""
        with self._lock:
            if self._functions is None:
                from ..explain import adapters

                self._functions = adapters.saved_model_functions(self.model_dir)
        functions = dict(self._functions)
        for key in ("predict_fn", "target_gradient_fn"):
            if functions.get(key) is not None:
                functions[key] = budget.guard(functions[key])
        return methods.ExplainableModel(**functions)

    def explain(self, methods, budget: JobBudget, images, targets, method: str, options: dict):
        """``{"predictions", "explanations"}`` of ``images`` (``methods``: pmlv_utils.explain)."""
        model = self.model(methods, budget)
        try:
            result = methods.explain(images, targets, method=method, model=model, **options)
            probabilities = model.predict(images)
        except (ValueError, TypeError) as err:
            raise RequestError(400, f"explain: {err}") from None
        except ExplainStopped as stop:
            if str(stop) == "cancelled":
                raise RequestError(503, "the server is stopping") from None
            raise RequestError(
                422,
                f"explain: stopped after the time budget of {budget.timeout_s:g} s; ask for "
                "fewer instances, steps or samples",
            ) from None
        rows = explanation_rows(
            result, probabilities, targets, self.labels, methods.attribution_to_png_b64
        )
        return {"predictions": prediction_rows(probabilities, self.labels), "explanations": rows}


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
