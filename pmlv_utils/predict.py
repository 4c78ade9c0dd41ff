"""Prediction with the exported SavedModel: in memory, and as a Beam batch / streaming job.

In memory (09a)::

    model = predict.LoadedModel(export_dir)          # tf.saved_model.load + labels
    rows = predict.predict_files(["a.jpg", "b.jpg"], model)
    # [{"filename": "a.jpg", "flower_type_str": "roses", "flower_type_int": 2,
    #   "probability": [...5 floats...]}, ...]

Beam (09a/09b)::

    result = predict.run_batch_prediction("flower_photos/*/*.jpg", export_dir, "out/pred")
    result.predictions()   # rows read back from out/pred-predictions-*.jsonl
    result.dead_letters()  # {"path", "reason"} rows from out/pred-errors-*.jsonl

The batched DoFn holds ONE model per worker process through ``apache_beam.utils.shared.Shared``
and predicts on lists made by ``beam.BatchElements``; files that are missing or not images go
to a dead-letter output and the job carries on. The naive DoFn loads the model for every
element (the first version in the book), kept for the comparison. The same transforms run on a
streaming source (``TestStream`` offline, Pub/Sub on Dataflow).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import safe_io

DEFAULT_SIGNATURE = "serving_default"
DEAD_LETTER = "dead_letter"
METRICS_NAMESPACE = "pmlv_predict"


# --------------------------------------------------------------------------------------
# The loaded model
# --------------------------------------------------------------------------------------


class LoadedModel:
    """An exported SavedModel loaded in memory, with its labels and image size.

    A plain Python object, so it can be weak-referenced (``Shared.acquire`` needs that; the
    object ``tf.saved_model.load`` returns cannot be). ``call`` runs any signature on numpy /
    Python inputs and returns numpy outputs.
    """

    def __init__(self, export_dir: str | os.PathLike):
        import tensorflow as tf

        self.export_dir = str(export_dir)
        if not tf.io.gfile.isdir(self.export_dir):
            raise FileNotFoundError(f"no exported model folder at {self.export_dir}")
        self._loaded = tf.saved_model.load(self.export_dir)
        self.signatures = dict(self._loaded.signatures)
        from . import export

        self.info = export.read_model_info(self.export_dir, required=False)
        self.labels: list[str] = list(self.info.get("labels", []))
        self.img_size = self.info.get("img_size")

    def input_specs(self, signature: str = DEFAULT_SIGNATURE) -> dict:
        """``{input name: tf.TensorSpec}`` of a signature."""
        return dict(self._signature(signature).structured_input_signature[1])

    def output_specs(self, signature: str = DEFAULT_SIGNATURE) -> dict:
        return dict(self._signature(signature).structured_outputs)

    def describe(self) -> dict[str, dict]:
        """Every signature's inputs and outputs as plain JSON (name -> dtype and shape)."""

        def spec_json(specs):
            return {
                k: {
                    "dtype": v.dtype.name,
                    "shape": v.shape.as_list() if v.shape.rank is not None else None,
                }
                for k, v in sorted(specs.items())
            }

        return {
            name: {
                "inputs": spec_json(self.input_specs(name)),
                "outputs": spec_json(self.output_specs(name)),
            }
            for name in sorted(self.signatures)
        }

    def call(self, signature: str = DEFAULT_SIGNATURE, **inputs: Any) -> dict[str, Any]:
        """Run a signature; inputs are lists / numpy arrays, converted to the signature's dtypes."""
        import tensorflow as tf

        specs = self.input_specs(signature)
        missing, unknown = set(specs) - set(inputs), set(inputs) - set(specs)
        if missing or unknown:
            raise ValueError(
                f"signature {signature!r} takes inputs {sorted(specs)}; "
                f"missing {sorted(missing)}, unexpected {sorted(unknown)}"
            )
        tensors = {k: tf.convert_to_tensor(v, dtype=specs[k].dtype) for k, v in inputs.items()}
        outputs = self._signature(signature)(**tensors)
        return {k: v.numpy() for k, v in outputs.items()}

    def _signature(self, name: str):
        try:
            return self.signatures[name]
        except KeyError:
            raise KeyError(
                f"the model has no signature {name!r}; it has {sorted(self.signatures)}"
            ) from None


def load_model(export_dir: str | os.PathLike) -> LoadedModel:
    """Load an exported SavedModel (see :class:`LoadedModel`)."""
    return LoadedModel(export_dir)


# --------------------------------------------------------------------------------------
# Outputs as plain JSON rows
# --------------------------------------------------------------------------------------


def to_json_value(value: Any) -> Any:
    """A numpy value (array, scalar, bytes) as plain JSON types."""
    import numpy as np

    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [to_json_value(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return to_json_value(value.item())
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value


def outputs_to_rows(outputs: dict[str, Any], n: int | None = None) -> list[dict[str, Any]]:
    """Split a signature's batched outputs into one plain-JSON dict per instance.

    Outputs without a batch dimension (scalars) are repeated in every row.
    """
    import numpy as np

    arrays = {k: np.asarray(v) for k, v in outputs.items()}
    if n is None:
        n = max((a.shape[0] for a in arrays.values() if a.ndim > 0), default=1)
    rows = []
    for i in range(n):
        rows.append(
            {k: to_json_value(a[i] if a.ndim > 0 else a) for k, a in sorted(arrays.items())}
        )
    return rows


# --------------------------------------------------------------------------------------
# In-memory prediction on files / bytes
# --------------------------------------------------------------------------------------


def _as_model(model_or_dir) -> LoadedModel:
    return model_or_dir if isinstance(model_or_dir, LoadedModel) else LoadedModel(model_or_dir)


def missing_files(filenames: Iterable[str]) -> list[str]:
    """The file names that do not exist (local or gs://)."""
    import tensorflow as tf

    return [f for f in filenames if not tf.io.gfile.exists(str(f))]


def predict_files(
    filenames: Sequence[str | os.PathLike],
    model,
    signature: str = DEFAULT_SIGNATURE,
) -> list[dict[str, Any]]:
    """Predict on image files with ``serving_default``; one JSON-ready dict per file.

    Raises FileNotFoundError naming every missing file, and ValueError naming the first file
    the model cannot decode, before/instead of TensorFlow's generic errors.
    """
    import tensorflow as tf

    names = [str(f) for f in filenames]
    if not names:
        return []
    absent = missing_files(names)
    if absent:
        raise FileNotFoundError(f"{len(absent)} of {len(names)} files not found: {absent[:5]}")
    model = _as_model(model)
    try:
        outputs = model.call(signature, filenames=names)
    except tf.errors.InvalidArgumentError as err:
        bad = _first_failing(names, lambda one: model.call(signature, filenames=one))
        raise ValueError(f"cannot predict on {bad!r}: {safe_io.short_error(err)}") from None
    rows = outputs_to_rows(outputs, len(names))
    for name, row in zip(names, rows):
        row.setdefault("filename", name)
    return rows


def predict_bytes(images: Sequence[bytes], model) -> list[dict[str, Any]]:
    """Predict on encoded JPEG/PNG bytes with the ``from_bytes`` signature."""
    import tensorflow as tf

    model = _as_model(model)
    try:
        return outputs_to_rows(model.call("from_bytes", img_bytes=list(images)), len(images))
    except tf.errors.InvalidArgumentError as err:
        idx = _first_failing(
            range(len(images)), lambda one: model.call("from_bytes", img_bytes=[images[one[0]]])
        )
        raise ValueError(
            f"image {idx} is not a decodable image: {safe_io.short_error(err)}"
        ) from None


def _first_failing(items, call_one):
    """The first item for which ``call_one([item])`` raises (used to name a bad input)."""
    import tensorflow as tf

    for item in items:
        try:
            call_one([item])
        except tf.errors.OpError:
            return item
    return None


def classify_file_error(filename: str) -> str:
    """Why a file cannot be predicted on (for dead-letter records)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(filename):
        return "file not found"
    if tf.io.gfile.isdir(filename):
        return "is a directory"
    return "not a decodable image"


# --------------------------------------------------------------------------------------
# Apache Beam: batched DoFn with a shared model, naive DoFn, REST DoFn
# --------------------------------------------------------------------------------------


def _beam():
    import apache_beam as beam  # imported on use: importing this module stays light

    return beam


def _counter(name: str):
    from apache_beam.metrics import Metrics

    return Metrics.counter(METRICS_NAMESPACE, name)


def _dead_letter(path: str, reason: str):
    from apache_beam import pvalue

    return pvalue.TaggedOutput(DEAD_LETTER, {"path": path, "reason": reason})


def _predict_batch_or_route(model: LoadedModel, filenames: list[str], signature: str):
    """Predict on a batch; when the batch fails, find the bad files one by one.

    Yields prediction rows and dead-letter TaggedOutputs (for the Beam DoFns).
    """
    import tensorflow as tf

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


class _DoFnBase:
    """Counters shared by the prediction DoFns (Beam metrics, summed over workers)."""

    def _count(self, rows):
        from apache_beam import pvalue

        for row in rows:
            if isinstance(row, pvalue.TaggedOutput):
                _counter("dead_letters").inc()
            else:
                _counter("predictions").inc()
            yield row


def _make_dofn_classes():
    beam = _beam()

    class PredictBatchDoFn(_DoFnBase, beam.DoFn):
        """Predict on a LIST of file names with one model per worker process (Beam ``Shared``).

        Use after ``beam.BatchElements``. Good rows go to the main output; missing / corrupt
        files go to the ``dead_letter`` tagged output as ``{"path", "reason"}``.
        """

        def __init__(self, export_dir: str, shared_handle=None, signature: str = DEFAULT_SIGNATURE):
            from apache_beam.utils.shared import Shared

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

    class NaivePredictDoFn(_DoFnBase, beam.DoFn):
        """The book's first version: load the model for EVERY element, predict on one file."""

        def __init__(self, export_dir: str, signature: str = DEFAULT_SIGNATURE):
            self._export_dir = str(export_dir)
            self._signature = signature

        def process(self, filename):
            _counter("model_loads").inc()
            model = LoadedModel(self._export_dir)
            yield from self._count(_predict_batch_or_route(model, [filename], self._signature))

    class RestPredictDoFn(_DoFnBase, beam.DoFn):
        """Predict on a LIST of file names by POSTing them to a model server's ``:predict``.

        The book's ModelPredict over HTTP: ``{"instances": [{"filenames": f}, ...]}``. A
        request the server rejects (4xx) is retried one file at a time, so only the bad files
        go to the dead-letter output with the server's message.
        """

        def __init__(self, predict_url: str, headers: dict | None = None, timeout: float = 60.0):
            self._url, self._headers, self._timeout = predict_url, dict(headers or {}), timeout
            self._session = None

        def setup(self):
            import requests

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

    return PredictBatchDoFn, NaivePredictDoFn, RestPredictDoFn


def __getattr__(name):  # the DoFn classes are built on first use, so importing needs no Beam
    if name in ("PredictBatchDoFn", "NaivePredictDoFn", "RestPredictDoFn"):
        classes = dict(
            zip(("PredictBatchDoFn", "NaivePredictDoFn", "RestPredictDoFn"), _make_dofn_classes())
        )
        globals().update(classes)
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------


@dataclass
class BatchPredictionResult:
    """What a :func:`run_batch_prediction` job wrote, and its Beam counters."""

    output_prefix: str
    mode: str
    seconds: float
    counters: dict[str, int] = field(default_factory=dict)

    def prediction_files(self) -> list[str]:
        import tensorflow as tf

        return sorted(tf.io.gfile.glob(f"{self.output_prefix}-predictions*.jsonl"))

    def dead_letter_files(self) -> list[str]:
        import tensorflow as tf

        return sorted(tf.io.gfile.glob(f"{self.output_prefix}-errors*.jsonl"))

    def predictions(self) -> list[dict]:
        return _read_jsonl(self.prediction_files())

    def dead_letters(self) -> list[dict]:
        return _read_jsonl(self.dead_letter_files())

    def output_counts(self) -> dict[str, int]:
        """Rows actually written: ``{"predictions": n, "dead_letters": m}``.

        The files are the ground truth: Beam's counters (``self.counters``) are summed over
        workers, but the DirectRunner in streaming mode reports only part of them.
        """
        return {"predictions": len(self.predictions()), "dead_letters": len(self.dead_letters())}

    @property
    def images_per_second(self) -> float:
        n = sum(self.output_counts().values())
        return n / self.seconds if self.seconds else float("nan")

    def summary(self) -> dict[str, Any]:
        """One row for a comparison table."""
        counts = self.output_counts()
        return {
            "mode": self.mode,
            "images": sum(counts.values()),
            **counts,
            "model_loads": self.counters.get("model_loads"),
            "seconds": round(self.seconds, 2),
            "images_per_s": round(self.images_per_second, 1),
        }


def _read_jsonl(files: list[str]) -> list[dict]:
    import tensorflow as tf

    rows = []
    for path in files:
        with tf.io.gfile.GFile(path) as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def read_filenames(
    pipeline,
    source,
    streaming: bool = False,
    stream_batch_size: int = 8,
    seconds_between_batches: float = 10.0,
):
    """The PCollection of image file names a prediction job reads.

    ``source`` is one of:
      - a list of file names: ``beam.Create`` (batch) or a ``TestStream`` that delivers them
        ``stream_batch_size`` at a time, ``seconds_between_batches`` apart (streaming);
      - ``"projects/P/subscriptions/S"`` or ``"projects/P/topics/T"`` (streaming only): Pub/Sub
        messages whose data is a file name -- the switch from TestStream to a real stream;
      - a ``.csv`` (the book's ``all_data.csv``: ``path,label``) or ``.txt`` (one path a line);
        relative paths are resolved against the file's folder;
      - any other string: a file pattern (local or gs://) matched with ``fileio.MatchFiles``.
    """
    beam = _beam()
    if isinstance(source, (list, tuple)):
        names = [str(s) for s in source]
        if not streaming:
            return pipeline | "Create" >> beam.Create(names)
        return pipeline | "TestStream" >> _test_stream(
            names, stream_batch_size, seconds_between_batches
        )
    source = str(source)
    if source.startswith("projects/"):
        if not streaming:
            raise ValueError("a Pub/Sub source needs streaming=True")
        kind = "subscription" if "/subscriptions/" in source else "topic"
        return (
            pipeline
            | "ReadPubSub" >> beam.io.ReadFromPubSub(**{kind: source})
            | "Decode" >> beam.Map(lambda data: data.decode("utf-8").strip())
        )
    if streaming:
        raise ValueError("streaming=True needs a list (TestStream) or a Pub/Sub source")
    if source.endswith((".csv", ".txt")):
        base = source.rsplit("/", 1)[0] if "/" in source else "."
        return (
            pipeline
            | "ReadList" >> beam.io.ReadFromText(source)
            | "PathColumn" >> beam.Map(lambda line: _resolve(line.split(",")[0].strip(), base))
            | "DropEmpty" >> beam.Filter(bool)
        )
    from apache_beam.io import fileio

    return (
        pipeline | "Match" >> fileio.MatchFiles(source) | "Path" >> beam.Map(lambda meta: meta.path)
    )


def _resolve(path: str, base: str) -> str:
    if not path or "://" in path or path.startswith("/"):
        return path
    return f"{base}/{path}"


def _test_stream(names: list[str], batch_size: int, gap: float):
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms.window import TimestampedValue

    stream = TestStream().advance_watermark_to(0)
    for start in range(0, len(names), batch_size):
        t = start // batch_size * gap
        stream = (
            stream.add_elements([TimestampedValue(n, t) for n in names[start : start + batch_size]])
            .advance_processing_time(gap)
            .advance_watermark_to(t + gap)
        )
    return stream.advance_watermark_to_infinity()


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
    beam = _beam()
    this = __import__(__name__, fromlist=["PredictBatchDoFn"])
    if mode == "naive":
        results = filenames | "PredictNaive" >> beam.ParDo(
            this.NaivePredictDoFn(export_dir, signature)
        ).with_outputs(DEAD_LETTER, main="predictions")
    else:
        batched = filenames | "Batch" >> beam.BatchElements(
            min_batch_size=1, max_batch_size=batch_size
        )
        if mode == "shared":
            dofn = this.PredictBatchDoFn(export_dir, shared_handle, signature)
        elif mode == "rest":
            if not predict_url:
                raise ValueError("mode='rest' needs predict_url")
            dofn = this.RestPredictDoFn(predict_url)
        else:
            raise ValueError(f"mode must be 'shared', 'naive' or 'rest', not {mode!r}")
        results = batched | f"Predict_{mode}" >> beam.ParDo(dofn).with_outputs(
            DEAD_LETTER, main="predictions"
        )
    return results.predictions, results[DEAD_LETTER]


def run_batch_prediction(
    input_pattern_or_list,
    export_dir: str | os.PathLike | None,
    output_prefix: str,
    streaming: bool = False,
    *,
    mode: str = "shared",
    batch_size: int = 32,
    predict_url: str | None = None,
    runner: str = "DirectRunner",
    pipeline_args: Sequence[str] = (),
    window_seconds: float = 10.0,
    stream_batch_size: int = 8,
) -> BatchPredictionResult:
    """Run a Beam prediction job: file names in, JSON lines out, bad files to a dead letter.

    Writes ``<output_prefix>-predictions-*.jsonl`` (one JSON object per image) and
    ``<output_prefix>-errors-*.jsonl`` (``{"path", "reason"}``). With ``streaming=True`` the
    same transforms run on an unbounded source in ``window_seconds`` fixed windows (one file
    per window). See :func:`read_filenames` for the sources and :func:`build_prediction` for
    ``mode``. ``pipeline_args`` go to PipelineOptions (e.g. ``--direct_num_workers=2``, or the
    Dataflow flags with ``runner="DataflowRunner"``).
    """
    beam = _beam()
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.transforms import window

    output_prefix = str(output_prefix)
    if "://" not in output_prefix:
        Path(output_prefix).parent.mkdir(parents=True, exist_ok=True)
    options = PipelineOptions(list(pipeline_args), runner=runner)
    options.view_as(StandardOptions).streaming = streaming
    export_dir = str(export_dir) if export_dir is not None else None
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    names = read_filenames(
        pipeline, input_pattern_or_list, streaming, stream_batch_size, window_seconds
    )
    if streaming:
        names = names | "Window" >> beam.WindowInto(window.FixedWindows(window_seconds))
    predictions, dead = build_prediction(
        names, export_dir, mode=mode, batch_size=batch_size, predict_url=predict_url
    )
    for pcoll, name in ((predictions, "predictions"), (dead, "errors")):
        _ = (
            pcoll
            | f"ToJson_{name}" >> beam.Map(lambda row: json.dumps(row, sort_keys=True))
            | f"Write_{name}"
            >> beam.io.WriteToText(
                f"{output_prefix}-{name}",
                file_name_suffix=".jsonl",
                shard_name_template="" if not streaming else None,
            )
        )
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    return BatchPredictionResult(output_prefix, mode, seconds, _counters(result))


def _counters(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter

    counts: dict[str, int] = {}
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except (NotImplementedError, AttributeError):
        return counts
    for c in query["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + int(value or 0)
    return counts


# --------------------------------------------------------------------------------------
# Timing helpers for the notebooks
# --------------------------------------------------------------------------------------


def time_in_memory(
    model: LoadedModel, filenames: Sequence[str], batch_size: int = 32, repeats: int = 3
) -> dict:
    """Images/s of in-memory ``serving_default`` calls on batches: the median of ``repeats`` passes.

    The median, not the best pass: on a shared machine the best of a few short passes is a
    lucky draw, and the figures it is compared with (a load test) are single long runs.
    """
    import statistics

    names = [str(f) for f in filenames]
    model.call(DEFAULT_SIGNATURE, filenames=names[:batch_size])  # warm up (first-call costs)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(0, len(names), batch_size):
            model.call(DEFAULT_SIGNATURE, filenames=names[i : i + batch_size])
        runs.append(time.perf_counter() - t)
    seconds = statistics.median(runs)
    return {
        "images": len(names),
        "batch_size": batch_size,
        "seconds": seconds,
        "images_per_s": len(names) / seconds,
    }


# --------------------------------------------------------------------------------------
# Picking images and showing predictions (notebooks)
# --------------------------------------------------------------------------------------


def short_name(path: str) -> str:
    """``<class>/<file>``: the last two components of a path (no machine folders)."""
    parts = str(path).replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-2:])


def split_files(
    all_data_csv: str | os.PathLike, split: str = "test", n: int | None = None
) -> list[tuple[str, str]]:
    """``(path, label)`` of the images of one split of ``all_data.csv``, classes interleaved.

    Deterministic (the split is a hash of ``<class>/<file>``); a small ``n`` still covers
    every class: the first image of each class, then the second, and so on.
    """
    from . import dataset_files

    by_label: dict[str, list[str]] = {}
    for row in dataset_files.read_all_data(str(all_data_csv), report=None):
        if row.problem is None and dataset_files.split_for(row.path) == split:
            by_label.setdefault(row.label, []).append(row.path)
    columns = [sorted(paths) for _, paths in sorted(by_label.items())]
    ordered = [
        (col[i], label)
        for i in range(max(map(len, columns), default=0))
        for col, label in zip(columns, sorted(by_label))
        if i < len(col)
    ]
    return ordered[:n] if n is not None else ordered


def predictions_table(
    rows: Sequence[dict], true_labels: Sequence[str] | None = None, name_key: str = "filename"
):
    """A pandas DataFrame of prediction rows: image (class/file), predicted label, its probability."""
    import pandas as pd

    records = []
    for i, row in enumerate(rows):
        probability = row.get("probability")
        top = max(probability) if isinstance(probability, list) else probability
        record = {"image": short_name(row[name_key]) if name_key in row else i}
        if true_labels is not None:
            record["label"] = true_labels[i]
        record.update({"predicted": row.get("flower_type_str"), "probability": top})
        if true_labels is not None:
            record["correct"] = record["label"] == record["predicted"]
        records.append(record)
    return pd.DataFrame(records)


# --------------------------------------------------------------------------------------
# Command line: the same job on the DirectRunner or Dataflow
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pmlv_utils.predict --input PATTERN|CSV --model_dir D --output_prefix P [--runner R] ...``"""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m pmlv_utils.predict", description="Beam batch prediction"
    )
    ap.add_argument(
        "--input",
        required=True,
        help="file pattern, all_data.csv, .txt list, or projects/.../subscriptions/...",
    )
    ap.add_argument("--model_dir", help="exported SavedModel (local or gs://)")
    ap.add_argument("--output_prefix", required=True)
    ap.add_argument("--mode", default="shared", choices=["shared", "naive", "rest"])
    ap.add_argument("--predict_url", help="a model server's :predict URL (mode rest)")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--streaming", action="store_true")
    ap.add_argument("--window_seconds", type=float, default=10.0)
    ap.add_argument("--runner", default="DirectRunner")
    args, pipeline_args = ap.parse_known_args(argv)
    result = run_batch_prediction(
        args.input,
        args.model_dir,
        args.output_prefix,
        args.streaming,
        mode=args.mode,
        batch_size=args.batch_size,
        predict_url=args.predict_url,
        runner=args.runner,
        pipeline_args=pipeline_args,
        window_seconds=args.window_seconds,
    )
    print(json.dumps({"seconds": round(result.seconds, 2), **result.counters}))


if __name__ == "__main__":
    main()
