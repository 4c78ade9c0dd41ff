"""The Beam prediction job: sources (files, CSV, TestStream, Pub/Sub), JSON-lines outputs.

    result = run_batch_prediction("flower_photos/*/*.jpg", export_dir, "out/pred")
    result.predictions()   # rows read back from out/pred-predictions-*.jsonl
    result.dead_letters()  # {"path", "reason"} rows from out/pred-errors-*.jsonl

The same transforms (:func:`pmlv_utils.predict.beam.build_prediction`) run on a streaming
source: ``TestStream`` offline, Pub/Sub on Dataflow.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import apache_beam as beam
import tensorflow as tf
from apache_beam.io import fileio
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import window

from .. import dataset_files
from .beam import DEAD_LETTER, METRICS_NAMESPACE, build_prediction
from .inmemory import csv_paths
from .rest import RetryPolicy


@dataclass
class BatchPredictionResult:
    """What a :func:`run_batch_prediction` job wrote, and its Beam counters."""

    output_prefix: str
    mode: str
    seconds: float
    counters: dict[str, int] = field(default_factory=dict)

    def prediction_files(self) -> list[str]:
        return sorted(tf.io.gfile.glob(f"{self.output_prefix}-predictions*.jsonl"))

    def dead_letter_files(self) -> list[str]:
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
      - a ``.csv`` (the book's ``all_data.csv``: ``path,label``; the first column, parsed with
        the ``csv`` module) or ``.txt`` (one path a line); relative paths are resolved against
        the file's folder; see :func:`read_inputs` for its lines that are not UTF-8;
      - any other string: a file pattern (local or gs://) matched with ``fileio.MatchFiles``.
    """
    return read_inputs(pipeline, source, streaming, stream_batch_size, seconds_between_batches)[0]


def _list_lines(source: str):
    """``.csv``: the first column; ``.txt``: the whole line. Lines that are not UTF-8 go to
    the dead-letter output (``{"path": "<list>:<line>", "reason"}``)."""

    def lines(path):
        if path.endswith(".csv"):
            rows = csv_paths(path)
        else:
            base = dataset_files.csv_folder(path)
            rows = (
                (n, dataset_files.resolve_path(text.strip(), base) if text is not None else None)
                for n, text, _ in dataset_files.iter_lines(path)
                if text is None or text.strip()
            )
        for number, name in rows:
            if name is None:
                reason = f"line {number} is not UTF-8"
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER, {"path": f"{path}:{number}", "reason": reason}
                )
            else:
                yield name

    return beam.FlatMap(lines).with_outputs(DEAD_LETTER, main="names")


def read_inputs(
    pipeline,
    source,
    streaming: bool = False,
    stream_batch_size: int = 8,
    seconds_between_batches: float = 10.0,
):
    """``(file names, dead letters or None)``: :func:`read_filenames` plus, for a ``.csv`` /
    ``.txt`` list, the PCollection of its unusable lines."""
    if isinstance(source, (list, tuple)):
        names = [str(s) for s in source]
        if not streaming:
            return pipeline | "Create" >> beam.Create(names), None
        stream = _test_stream(names, stream_batch_size, seconds_between_batches)
        return pipeline | "TestStream" >> stream, None
    source = str(source)
    if source.startswith("projects/"):
        if not streaming:
            raise ValueError("a Pub/Sub source needs streaming=True")
        kind = "subscription" if "/subscriptions/" in source else "topic"
        names = (
            pipeline
            | "ReadPubSub" >> beam.io.ReadFromPubSub(**{kind: source})
            | "Decode" >> beam.Map(lambda data: data.decode("utf-8", "replace").strip())
        )
        return names, None
    if streaming:
        raise ValueError("streaming=True needs a list (TestStream) or a Pub/Sub source")
    if source.endswith((".csv", ".txt")):
        parts = pipeline | "ListFile" >> beam.Create([source]) | "ReadList" >> _list_lines(source)
        names = parts.names | "Spread" >> beam.Reshuffle()
        return names, parts[DEAD_LETTER]
    names = (
        pipeline | "Match" >> fileio.MatchFiles(source) | "Path" >> beam.Map(lambda meta: meta.path)
    )
    return names, None


def _test_stream(names: list[str], batch_size: int, gap: float):
    stream = TestStream().advance_watermark_to(0)
    for start in range(0, len(names), batch_size):
        t = start // batch_size * gap
        stream = (
            stream.add_elements(
                [window.TimestampedValue(n, t) for n in names[start : start + batch_size]]
            )
            .advance_processing_time(gap)
            .advance_watermark_to(t + gap)
        )
    return stream.advance_watermark_to_infinity()


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
    rest_policy: RetryPolicy | None = None,
) -> BatchPredictionResult:
    """Run a Beam prediction job: file names in, JSON lines out, bad files to a dead letter.

    Writes ``<output_prefix>-predictions-*.jsonl`` (one JSON object per image) and
    ``<output_prefix>-errors-*.jsonl`` (``{"path", "reason"}``). With ``streaming=True`` the
    same transforms run on an unbounded source in ``window_seconds`` fixed windows (one file
    per window). See :func:`read_filenames` for the sources and :func:`build_prediction` for
    ``mode`` (``rest_policy``: the retries of ``mode="rest"``). ``pipeline_args`` go to
    PipelineOptions (e.g. ``--direct_num_workers=2``, or the Dataflow flags with
    ``runner="DataflowRunner"``). A bad file or list line is dead-lettered, never fails the
    job; Beam's file writes go to a temporary folder and are renamed when the job finishes.
    """
    output_prefix = str(output_prefix)
    if "://" not in output_prefix:
        Path(output_prefix).parent.mkdir(parents=True, exist_ok=True)
    options = PipelineOptions(list(pipeline_args), runner=runner)
    options.view_as(StandardOptions).streaming = streaming
    export_dir = str(export_dir) if export_dir is not None else None
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    names, unreadable = read_inputs(
        pipeline, input_pattern_or_list, streaming, stream_batch_size, window_seconds
    )
    if streaming:
        names = names | "Window" >> beam.WindowInto(window.FixedWindows(window_seconds))
    predictions, dead = build_prediction(
        names,
        export_dir,
        mode=mode,
        batch_size=batch_size,
        predict_url=predict_url,
        rest_policy=rest_policy,
    )
    if unreadable is not None:
        dead = (dead, unreadable) | "AllDeadLetters" >> beam.Flatten()
    _write_jsonl(predictions, f"{output_prefix}-predictions", streaming)
    _write_jsonl(dead, f"{output_prefix}-errors", streaming)
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    return BatchPredictionResult(output_prefix, mode, seconds, _counters(result))


def _write_jsonl(rows, prefix: str, streaming: bool) -> None:
    """Rows as JSON lines under ``prefix`` (Beam writes a temporary folder, then renames)."""
    name = prefix.rsplit("-", 1)[-1]
    _ = (
        rows
        | f"ToJson_{name}" >> beam.Map(lambda row: json.dumps(row, sort_keys=True))
        | f"Write_{name}"
        >> beam.io.WriteToText(
            prefix, file_name_suffix=".jsonl", shard_name_template="" if not streaming else None
        )
    )


def _counters(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except (NotImplementedError, AttributeError):
        return counts
    for c in query["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + int(value or 0)
    return counts
