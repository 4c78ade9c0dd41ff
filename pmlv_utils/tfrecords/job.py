"""The Beam job: ``all_data.csv`` -> train/valid/test TFRecords (GZIP) + a dead-letter file.

Taught in 05_create_dataset/05_split_tfrecord.ipynb, section 3 (the graph written by hand), of
which this is the hardened version (section 4).

    config = DatasetJobConfig(all_data="…/all_data.csv", labels_file="…/dict.txt",
                              output_dir="…/tfrecords")
    counts = run_pipeline(config)

The graph: the CSV path -> its lines (:func:`pmlv_utils.dataset_files.iter_all_data`, read as
bytes: a bad line is a dead letter, duplicates are marked) -> Reshuffle (spread over workers) ->
:class:`CsvRowToRecord` (one tagged output per split and one for the errors) -> each record
keyed by its shard -> grouped per shard file (every shard name is in the group, so an empty
split still gets its file) -> :class:`WriteShard`.

Byte-identical outputs: a record's bytes are deterministic (:func:`.examples.serialize`), its
shard is a hash of its path, and a shard holds its records sorted by that hash (a fixed order
that still mixes the classes); the errors file is sorted by CSV line. Beam's own writers assign
shards at random, so the job writes its files itself: each to a temporary name beside it,
renamed when complete (on gs:// a rename is a copy then a delete, object by object).
Duplicates: the first line naming a path is written, every later one is dead-lettered as
``duplicate`` naming that first line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
import uuid
from typing import Sequence

import apache_beam as beam
import tensorflow as tf
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from .. import dataset_files, quiet, safe_io
from ..dataset_files import DEFAULT_FRACTIONS, SPLITS, CsvRow
from .examples import make_example, serialize
from .images import (
    EMPTY_LINE,
    ERRORS_PREFIX,
    UNKNOWN_LABEL,
    ImageRejected,
    error_record,
    read_bytes,
    to_rgb_jpeg,
)
from .options import LOCAL_RUNNERS, build_pipeline_options
from .reading import remove_output_files

quiet.beam_interactive_notice_off()

METRICS_NAMESPACE = "pmlv_tfrecords"
LABELS_NAME = "dict.txt"


@dataclasses.dataclass(frozen=True)
class DatasetJobConfig:
    """Everything one run of the job needs (the book's ``jpeg_to_tfrecord.py`` flags).

    ``runner``: "DirectRunner" (local) or "DataflowRunner" (then ``project_id``, ``region``
    and gs:// paths). ``num_shards``: train shards (an int; valid/test get 1/8 of it), a dict
    per split, or None for a size from the data. ``direct_num_workers`` /
    ``direct_running_mode``: DirectRunner only; ``num_workers``: Dataflow's maximum.
    ``extra_args``: more Beam flags. ``fractions``: train/valid/test shares of the split.
    ``wait``: None waits for local runs and returns at once from a Dataflow submission.
    """

    all_data: str
    labels_file: str
    output_dir: str
    runner: str = "DirectRunner"
    project_id: str | None = None
    region: str | None = None
    num_shards: int | dict | None = None
    direct_num_workers: int | None = None
    direct_running_mode: str | None = None
    extra_args: tuple[str, ...] = ()
    num_workers: int | None = None
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    job_name: str | None = None
    wait: bool | None = None
    verbose: bool = True

    def __post_init__(self):
        for name in ("all_data", "labels_file", "output_dir"):  # paths may be Path objects
            object.__setattr__(self, name, str(getattr(self, name)))
        object.__setattr__(self, "extra_args", tuple(self.extra_args or ()))
        object.__setattr__(self, "fractions", tuple(self.fractions))

    @property
    def local(self) -> bool:
        """True when the job runs on this machine (DirectRunner)."""
        return self.runner in LOCAL_RUNNERS

    def pipeline_options(self, requirements_dir=None) -> PipelineOptions:
        """The validated Beam options of this run (see :func:`.options.build_pipeline_options`)."""
        return build_pipeline_options(
            self.runner,
            self.output_dir,
            project_id=self.project_id,
            region=self.region,
            job_name=self.job_name,
            num_workers=self.num_workers,
            direct_num_workers=self.direct_num_workers,
            direct_running_mode=self.direct_running_mode,
            extra_args=list(self.extra_args),
            requirements_dir=requirements_dir,
        )


def record_key(path: str) -> bytes:
    """The hash that picks a record's shard and its place in the shard (sha256 of the path)."""
    return hashlib.sha256(b"shard:" + path.encode("utf-8", "surrogatepass")).digest()


def labels_path(output_dir: str) -> str:
    """``<output_dir>/dict.txt``: the job's labels, one a line, written beside the shards."""
    return f"{output_dir.rstrip('/')}/{LABELS_NAME}"


def shard_name(output_dir: str, name: str, index: int, count: int) -> str:
    """``<output_dir>/train-00003-of-00016.gz`` (Beam's shard names); errors end in .jsonl."""
    suffix = ".jsonl" if name == ERRORS_PREFIX else ".gz"
    return f"{output_dir.rstrip('/')}/{name}-{index:05d}-of-{count:05d}{suffix}"


class CsvRowToRecord(beam.DoFn):
    """A CsvRow -> ``(record_key, serialized record)`` on its split's tagged output, or
    ``(line, dead-letter JSON)`` on the ``ERRORS_PREFIX`` output. Counts what it does in Beam
    metrics."""

    def __init__(self, labels: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS):
        super().__init__()
        self.label_index = {label: i for i, label in enumerate(labels)}
        self.fractions = tuple(fractions)

    def _reject(self, row: CsvRow, reason: str, detail: str = ""):
        Metrics.counter(METRICS_NAMESPACE, f"rejected/{reason}").inc()
        text = json.dumps(error_record(row, reason, detail), sort_keys=True)
        return beam.pvalue.TaggedOutput(ERRORS_PREFIX, ((row.line, reason), text))

    def process(self, row: CsvRow):
        if row.problem:
            yield self._reject(row, row.problem)
            return
        if row.label not in self.label_index:
            yield self._reject(row, UNKNOWN_LABEL, f"not in the labels file: {row.label!r}")
            return
        try:
            jpeg, shape, converted_from = to_rgb_jpeg(read_bytes(row.path))
        except ImageRejected as e:
            yield self._reject(row, e.reason, e.detail)
            return
        if converted_from:
            Metrics.counter(METRICS_NAMESPACE, f"converted/{converted_from}").inc()
        split = dataset_files.split_for(row.path, self.fractions)
        Metrics.counter(METRICS_NAMESPACE, f"written/{split}").inc()
        example = make_example(jpeg, shape, row.label, self.label_index[row.label], row.path)
        yield beam.pvalue.TaggedOutput(split, (record_key(row.path), serialize(example)))


class WriteShard(beam.DoFn):
    """``((name, index), {"rows": [(sort key, payload)], ...})`` -> one shard file, its rows
    sorted by key: GZIP TFRecords for a split, JSON lines for the errors. Written to a
    temporary name beside the shard, then renamed over it (a retried bundle rewrites it)."""

    def __init__(self, output_dir: str, shards: dict):
        super().__init__()
        self.output_dir, self.shards = output_dir.rstrip("/"), dict(shards)

    def process(self, keyed):
        (name, index), groups = keyed
        final = shard_name(self.output_dir, name, index, self.shards[name])
        tmp = f"{self.output_dir}/.{final.rsplit('/', 1)[1]}.tmp-{uuid.uuid4().hex[:12]}"
        rows = sorted(groups["rows"], key=lambda kv: kv[0])
        try:
            if name == ERRORS_PREFIX:
                with tf.io.gfile.GFile(tmp, "w") as f:
                    f.write("".join(f"{text}\n" for _, text in rows))
            else:
                with tf.io.TFRecordWriter(tmp, options="GZIP") as writer:
                    for _, record in rows:
                        writer.write(record)
            tf.io.gfile.rename(tmp, final, overwrite=True)
        except BaseException:
            with contextlib.suppress(Exception):
                tf.io.gfile.remove(tmp)
            raise
        yield final


def count_csv_lines(all_data: str) -> int:
    """Number of non-blank lines of the CSV; ValueError naming the file when there are none."""
    rows = list(dataset_files.iter_all_data(all_data))
    n = sum(1 for r in rows if r.problem != EMPTY_LINE)
    if n == 0:
        raise ValueError(f"data CSV {all_data} is empty: expected headerless 'path,label' lines")
    return n


def shard_counts(
    num_shards: int | dict | None, n_lines: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, int]:
    """Shards per split. None: about 200 records a train shard (1..16), valid/test 1/8 of that
    (at least 1), the book's 16/2/2 for its 3,670 images. An int sets train, a dict each split."""
    if isinstance(num_shards, dict):
        missing = [s for s in SPLITS if s not in num_shards]
        if missing:
            raise ValueError(f"num_shards dict lacks {missing}")
        counts = {s: int(num_shards[s]) for s in SPLITS}
    else:
        train = (
            int(num_shards) if num_shards else min(16, max(1, round(n_lines * fractions[0] / 200)))
        )
        counts = {"train": train, "valid": max(1, train // 8), "test": max(1, train // 8)}
    if any(n < 1 for n in counts.values()):
        raise ValueError(f"every split needs at least one shard, got {counts}")
    return counts


def _shard_of(split: str, shards: dict):
    def assign(kv):
        key, record = kv
        return (split, int.from_bytes(key[:8], "big") % shards[split]), (key, record)

    return assign


def build_graph(pipeline, config: DatasetJobConfig, labels: Sequence[str], shards: dict) -> None:
    """Add the job's transforms to ``pipeline`` (nothing runs yet)."""
    parts = (
        pipeline
        | "csv path" >> beam.Create([config.all_data])
        | "read csv lines" >> beam.FlatMap(dataset_files.iter_all_data, list(labels))
        | "spread over workers" >> beam.Reshuffle()
        | "to records"
        >> beam.ParDo(CsvRowToRecord(labels, config.fractions)).with_outputs(*SPLITS, ERRORS_PREFIX)
    )
    keyed = [parts[s] | f"shard of {s}" >> beam.Map(_shard_of(s, shards)) for s in SPLITS]
    keyed.append(
        parts[ERRORS_PREFIX] | "errors file" >> beam.Map(lambda kv: ((ERRORS_PREFIX, 0), kv))
    )
    names = [(s, i) for s in SPLITS for i in range(shards[s])] + [(ERRORS_PREFIX, 0)]
    every_shard = pipeline | "shard names" >> beam.Create([(n, None) for n in names])
    _ = (
        {"rows": keyed | "all rows" >> beam.Flatten(), "names": every_shard}
        | "group by shard" >> beam.CoGroupByKey()
        | "write shards" >> beam.ParDo(WriteShard(config.output_dir, {**shards, ERRORS_PREFIX: 1}))
    )


def run_pipeline(config: DatasetJobConfig) -> dict:
    """Run the CSV -> TFRecords job; return its counts.

    Returns ``{"written": {split: n}, "rejected": {reason: n}, "converted": {"JPEG/L": n, ...},
    "total_written", "total_rejected", "shards": {split: n}, "seconds", "runner"}``.
    Local runs wait for the job; a Dataflow submission returns at once (``wait=False``) with
    ``job_id`` and ``state`` instead of counts, unless ``wait=True``.
    Raises ValueError (before any work) for an empty CSV or fewer than two labels.
    """
    if not isinstance(config, DatasetJobConfig):
        raise TypeError(
            "run_pipeline takes one DatasetJobConfig(all_data=..., labels_file=..., "
            f"output_dir=..., ...), got {type(config).__name__}"
        )
    if config.runner == "DataflowRunner" and not config.all_data.startswith("gs://"):
        raise ValueError(f"DataflowRunner workers cannot read a local CSV: {config.all_data}")
    labels = dataset_files.read_labels(config.labels_file)
    shards = shard_counts(config.num_shards, count_csv_lines(config.all_data), config.fractions)
    dataset_files.split_for("a/b", config.fractions)  # validates the fractions
    options = config.pipeline_options()
    if config.local:
        os.makedirs(config.output_dir, exist_ok=True)
    # an earlier run with another shard count would otherwise be read too
    stale = remove_output_files(config.output_dir)
    if stale and config.verbose:
        print(f"removed {stale} file(s) of an earlier run from the output folder")
    # the labels beside the shards: the trainer then needs only --input_topdir
    safe_io.write_text(labels_path(config.output_dir), "".join(f"{x}\n" for x in labels))

    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    build_graph(pipeline, config, labels, shards)
    wait = config.local if config.wait is None else config.wait
    with _quiet_worker_warnings(config.direct_running_mode == "multi_processing"):
        result = pipeline.run()
        if wait:
            result.wait_until_finish()
    if not wait:
        return _submitted(result, config, shards)
    counts = _counts(_metric_counts(result), shards, time.perf_counter() - start, config.runner)
    if config.verbose:
        print(format_counts(counts))
    return counts


def _submitted(result, config: DatasetJobConfig, shards: dict) -> dict:
    info = {
        "runner": config.runner,
        "job_id": getattr(result, "job_id", lambda: None)(),
        "state": str(result.state),
        "shards": shards,
    }
    if config.verbose:
        print(
            f"submitted {config.runner} job {info['job_id']} ({info['state']}); "
            f"output: {config.output_dir.rstrip('/')}"
        )
    return info


def _counts(metrics: dict[str, int], shards: dict, seconds: float, runner: str) -> dict:
    counts = {
        "written": {s: metrics.get(f"written/{s}", 0) for s in SPLITS},
        "rejected": {
            k.split("/", 1)[1]: v for k, v in sorted(metrics.items()) if k.startswith("rejected/")
        },
        "converted": {
            k.split("/", 1)[1]: v for k, v in sorted(metrics.items()) if k.startswith("converted/")
        },
        "shards": shards,
        "seconds": round(seconds, 2),
        "runner": runner,
    }
    counts["total_written"] = sum(counts["written"].values())
    counts["total_rejected"] = sum(counts["rejected"].values())
    return counts


def _metric_counts(result) -> dict[str, int]:
    totals: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + int(value or 0)
    return totals


@contextlib.contextmanager
def _quiet_worker_warnings(worker_processes: bool = False):
    """Hide the DirectRunner's forwarded worker start-up warnings while a job runs; errors
    still show. ``worker_processes`` (multi_processing): the worker processes inherit a
    silenced stderr, so TensorFlow's C++ start-up lines in each of them stay out of a
    notebook (a failing worker still fails the job with its error in the exception)."""
    logger = logging.getLogger("apache_beam.runners.portability.local_job_service")
    level = logger.level
    logger.setLevel(logging.ERROR)
    silenced = quiet.native_stderr_silenced() if worker_processes else contextlib.nullcontext()
    try:
        with silenced:
            yield
    finally:
        logger.setLevel(level)


def format_counts(counts: dict) -> str:
    """A short human-readable summary of :func:`run_pipeline`'s counts."""
    written = ", ".join(f"{s} {n}" for s, n in counts["written"].items())
    lines = [
        f"written {counts['total_written']} records ({written}) in {counts['seconds']:.1f} s "
        f"with {counts['runner']}",
        f"rejected {counts['total_rejected']} line(s)"
        + ("".join(f"\n  {reason}: {n}" for reason, n in counts["rejected"].items())),
    ]
    if counts.get("converted"):
        lines.append(
            "converted to RGB JPEG: "
            + ", ".join(f"{k} {v}" for k, v in counts["converted"].items())
        )
    return "\n".join(lines)
