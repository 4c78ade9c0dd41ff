"""The Beam prediction transforms: batched DoFn with a shared model, naive DoFn, REST DoFn.

Taught in 09_deploying/09a_inmemory.ipynb, section 3 ("The batched DoFn, written by hand", then
checked against :class:`PredictBatchDoFn`); the REST DoFn in 09b, section 4.

:class:`PredictBatchDoFn` holds ONE model per worker process through
``apache_beam.utils.shared.Shared`` and predicts on lists made by ``beam.BatchElements``; files
that are missing, not regular files, over the size cap, over the pixel budget (read from the
header, before anything decodes: :func:`.inmemory.read_image_checked`) or not decodable go to
the ``dead_letter`` output and the job carries on. The bytes that were checked are the bytes
predicted on (the ``from_bytes`` signature). :class:`NaivePredictDoFn` loads the model for
every element (the first version in the book), kept for the comparison.
:class:`RestPredictDoFn` POSTs the lists to a model server with bounded retries
(:mod:`.rest`): an instance the server cannot answer is dead-lettered, the job finishes.
:func:`build_prediction` applies one of them to a PCollection of file names.
"""

from __future__ import annotations

import apache_beam as beam
import requests
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from .. import quiet, safe_io
from .inmemory import ImageRefused, outputs_to_rows, read_image_checked
from .model import DEFAULT_SIGNATURE, LoadedModel
from .rest import Breaker, RetryPolicy, predict_instances

quiet.beam_interactive_notice_off()

DEAD_LETTER = "dead_letter"
METRICS_NAMESPACE = "pmlv_predict"


def _counter(name: str):
    """A Beam counter of the prediction jobs (summed over workers)."""
    return Metrics.counter(METRICS_NAMESPACE, name)


def _dead_letter(path: str, reason: str) -> pvalue.TaggedOutput:
    """A ``{"path", "reason"}`` row for the dead-letter output."""
    return pvalue.TaggedOutput(DEAD_LETTER, {"path": path, "reason": reason})


def _caller(model: LoadedModel, signature: str):
    """``call(names, blobs)``: the checked bytes through ``from_bytes`` for the default
    signature (same outputs), the file names for any other one."""
    if signature == DEFAULT_SIGNATURE and "from_bytes" in model.signatures:
        return lambda names, blobs: model.call("from_bytes", img_bytes=blobs)
    return lambda names, blobs: model.call(signature, filenames=names)


def _predict_batch_or_route(model: LoadedModel, filenames: list[str], signature: str):
    """Check each file, predict on the batch; when the batch fails, find the bad files one by
    one. Yields prediction rows and dead-letter TaggedOutputs (for the Beam DoFns)."""
    names, blobs = [], []
    for f in filenames:
        try:
            blobs.append(read_image_checked(f))
            names.append(f)
        except ImageRefused as err:
            yield _dead_letter(f, err.reason)
    if not names:
        return
    call = _caller(model, signature)
    try:
        batches = [(names, call(names, blobs))]
    except Exception:  # noqa: BLE001 - isolate the bad ones; the others are predicted once
        batches = []
        for name, blob in zip(names, blobs):
            try:
                batches.append(([name], call([name], [blob])))
            except Exception as err:  # noqa: BLE001 - this file's dead-letter reason
                yield _dead_letter(name, f"not a decodable image: {safe_io.short_error(err)}")
    for batch_names, outputs in batches:
        for name, row in zip(batch_names, outputs_to_rows(outputs, len(batch_names))):
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

    The book's ModelPredict over HTTP: ``{"instances": [{"filenames": f}, ...]}``. Bounded
    retries with backoff (``policy``, :class:`.rest.RetryPolicy`) on 429/5xx, timeouts and
    refused connections; a request the server rejects (4xx, or 500 after the retries) is
    asked again one file at a time, so only the bad files go to the dead-letter output, with
    the server's message. A server that stays down or silent dead-letters the batch, and after
    ``policy.open_after`` such requests the later batches without trying (but for a probe
    now and then): the job finishes either way, and soon.
    """

    def __init__(
        self,
        predict_url: str,
        headers: dict | None = None,
        timeout: float = 60.0,
        policy: RetryPolicy | None = None,
    ):
        self._url, self._headers = predict_url, dict(headers or {})
        self._policy = policy or RetryPolicy(timeout_s=timeout)
        self._session, self._breaker = None, None

    def setup(self):
        self._session = requests.Session()
        self._breaker = Breaker(self._policy)  # one per DoFn instance (worker thread)

    def teardown(self):
        if self._session is not None:
            self._session.close()

    def process(self, filenames):
        _counter("batches").inc()
        yield from self._count(self._rows(list(filenames)))

    def _rows(self, filenames):
        answers = predict_instances(
            self._session,
            self._url,
            [{"filenames": f} for f in filenames],
            self._policy,
            headers=self._headers,
            on_request=_counter("http_requests").inc,
            on_retry=lambda _: _counter("http_retries").inc(),
            breaker=self._breaker,
        )
        for name, answer in zip(filenames, answers):
            if "error" in answer:
                yield _dead_letter(name, answer["error"])
                continue
            row = answer["prediction"]
            row = dict(row) if isinstance(row, dict) else {"prediction": row}
            row.setdefault("filename", name)
            yield row


def build_prediction(
    filenames,
    export_dir: str | None = None,
    *,
    mode: str = "shared",
    batch_size: int = 32,
    predict_url: str | None = None,
    shared_handle=None,
    signature: str = DEFAULT_SIGNATURE,
    rest_policy: RetryPolicy | None = None,
):
    """Apply prediction to a PCollection of file names; returns (predictions, dead_letters).

    ``mode``: ``"shared"`` (BatchElements + one model per worker), ``"naive"`` (model loaded
    per element) or ``"rest"`` (BatchElements + POST to ``predict_url``, retried as
    ``rest_policy`` says).
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
            dofn = RestPredictDoFn(predict_url, policy=rest_policy)
        else:
            raise ValueError(f"mode must be 'shared', 'naive' or 'rest', not {mode!r}")
        results = batched | f"Predict_{mode}" >> beam.ParDo(dofn).with_outputs(
            DEAD_LETTER, main="predictions"
        )
    return results.predictions, results[DEAD_LETTER]
