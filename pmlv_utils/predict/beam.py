"""The Beam prediction transforms: batched DoFn with a shared model, naive DoFn, REST DoFn.

:class:`PredictBatchDoFn` holds ONE model per worker process through
``apache_beam.utils.shared.Shared`` and predicts on lists made by ``beam.BatchElements``; files
that are missing or not images go to the ``dead_letter`` output and the job carries on.
:class:`NaivePredictDoFn` loads the model for every element (the first version in the book),
kept for the comparison. :class:`RestPredictDoFn` POSTs the lists to a model server.
:func:`build_prediction` applies one of them to a PCollection of file names.
"""

from __future__ import annotations

import apache_beam as beam
import requests
import tensorflow as tf
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from .. import safe_io
from .inmemory import classify_file_error, outputs_to_rows
from .model import DEFAULT_SIGNATURE, LoadedModel

DEAD_LETTER = "dead_letter"
METRICS_NAMESPACE = "pmlv_predict"


def _counter(name: str):
    """A Beam counter of the prediction jobs (summed over workers)."""
    return Metrics.counter(METRICS_NAMESPACE, name)


def _dead_letter(path: str, reason: str) -> pvalue.TaggedOutput:
    """A ``{"path", "reason"}`` row for the dead-letter output."""
    return pvalue.TaggedOutput(DEAD_LETTER, {"path": path, "reason": reason})


def _predict_batch_or_route(model: LoadedModel, filenames: list[str], signature: str):
    """Predict on a batch; when the batch fails, find the bad files one by one.

    Yields prediction rows and dead-letter TaggedOutputs (for the Beam DoFns).
    """
    good = []
    for f in filenames:
        if tf.io.gfile.exists(f) and not tf.io.gfile.isdir(f):
            good.append(f)
        else:
            yield _dead_letter(f, classify_file_error(f))
    if not good:
        return
    try:
        batches = [(good, model.call(signature, filenames=good))]
    except tf.errors.OpError:
        batches = []
        for f in good:  # isolate the bad ones; the others are still predicted once
            try:
                batches.append(([f], model.call(signature, filenames=[f])))
            except tf.errors.OpError as err:
                yield _dead_letter(f, f"{classify_file_error(f)}: {safe_io.short_error(err)}")
    for names, outputs in batches:
        for name, row in zip(names, outputs_to_rows(outputs, len(names))):
            row.setdefault("filename", name)
            yield row


class _DoFnBase(beam.DoFn):
    """Base of the prediction DoFns: counts predictions and dead letters (Beam metrics)."""

    def _count(self, rows):
        for row in rows:
            if isinstance(row, pvalue.TaggedOutput):
                _counter("dead_letters").inc()
            else:
                _counter("predictions").inc()
            yield row


class PredictBatchDoFn(_DoFnBase):
    """Predict on a LIST of file names with one model per worker process (Beam ``Shared``).

    Use after ``beam.BatchElements``. Good rows go to the main output; missing / corrupt
    files go to the ``dead_letter`` tagged output as ``{"path", "reason"}``.
    """

    def __init__(self, export_dir: str, shared_handle=None, signature: str = DEFAULT_SIGNATURE):
        self._export_dir = str(export_dir)
        self._shared = shared_handle or Shared()
        self._signature = signature
        self._model = None

    def _load(self) -> LoadedModel:
        _counter("model_loads").inc()
        return LoadedModel(self._export_dir)

    def process(self, filenames):
        if self._model is None:  # acquired here (not in setup) so the load is counted
            self._model = self._shared.acquire(self._load, tag=self._export_dir)
        _counter("batches").inc()
        yield from self._count(
            _predict_batch_or_route(self._model, list(filenames), self._signature)
        )


class NaivePredictDoFn(_DoFnBase):
    """The book's first version: load the model for EVERY element, predict on one file."""

    def __init__(self, export_dir: str, signature: str = DEFAULT_SIGNATURE):
        self._export_dir = str(export_dir)
        self._signature = signature

    def process(self, filename):
        _counter("model_loads").inc()
        model = LoadedModel(self._export_dir)
        yield from self._count(_predict_batch_or_route(model, [filename], self._signature))


class RestPredictDoFn(_DoFnBase):
    """Predict on a LIST of file names by POSTing them to a model server's ``:predict``.

    The book's ModelPredict over HTTP: ``{"instances": [{"filenames": f}, ...]}``. A
    request the server rejects (4xx) is retried one file at a time, so only the bad files
    go to the dead-letter output with the server's message.
    """

    def __init__(self, predict_url: str, headers: dict | None = None, timeout: float = 60.0):
        self._url, self._headers, self._timeout = predict_url, dict(headers or {}), timeout
        self._session = None

    def setup(self):
        self._session = requests.Session()

    def teardown(self):
        if self._session is not None:
            self._session.close()

    def _post(self, filenames):
        body = {"instances": [{"filenames": f} for f in filenames]}
        return self._session.post(
            self._url, json=body, headers=self._headers, timeout=self._timeout
        )

    def process(self, filenames):
        _counter("batches").inc()
        yield from self._count(self._rows(list(filenames)))

    def _rows(self, filenames):
        resp = self._post(filenames)
        if resp.status_code == 200:
            for name, row in zip(filenames, resp.json()["predictions"]):
                row.setdefault("filename", name)
                yield row
            return
        if 400 <= resp.status_code < 500 and len(filenames) > 1:
            for f in filenames:
                yield from self._rows([f])
            return
        if 400 <= resp.status_code < 500:
            yield _dead_letter(
                filenames[0], f"HTTP {resp.status_code}: {safe_io.http_error_text(resp)}"
            )
            return
        resp.raise_for_status()  # 5xx: let Beam retry the bundle


def build_prediction(
    filenames,
    export_dir: str | None = None,
    *,
    mode: str = "shared",
    batch_size: int = 32,
    predict_url: str | None = None,
    shared_handle=None,
    signature: str = DEFAULT_SIGNATURE,
):
    """Apply prediction to a PCollection of file names; returns (predictions, dead_letters).

    ``mode``: ``"shared"`` (BatchElements + one model per worker), ``"naive"`` (model loaded
    per element) or ``"rest"`` (BatchElements + POST to ``predict_url``).
    """
    if mode == "naive":
        results = filenames | "PredictNaive" >> beam.ParDo(
            NaivePredictDoFn(export_dir, signature)
        ).with_outputs(DEAD_LETTER, main="predictions")
    else:
        batched = filenames | "Batch" >> beam.BatchElements(
            min_batch_size=1, max_batch_size=batch_size
        )
        if mode == "shared":
            dofn = PredictBatchDoFn(export_dir, shared_handle, signature)
        elif mode == "rest":
            if not predict_url:
                raise ValueError("mode='rest' needs predict_url")
            dofn = RestPredictDoFn(predict_url)
        else:
            raise ValueError(f"mode must be 'shared', 'naive' or 'rest', not {mode!r}")
        results = batched | f"Predict_{mode}" >> beam.ParDo(dofn).with_outputs(
            DEAD_LETTER, main="predictions"
        )
    return results.predictions, results[DEAD_LETTER]
