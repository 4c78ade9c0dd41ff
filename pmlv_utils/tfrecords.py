"""The chapter-5 Beam job: ``all_data.csv`` -> train/valid/test TFRecords, plus a dead-letter file.

Record schema (``SCHEMA_VERSION``), one ``tf.train.Example`` per image:

    image      bytes     the encoded JPEG, RGB (the source bytes when the source already is one)
    shape      int64[3]  (height, width, 3)
    label      bytes     e.g. b"daisy"
    label_int  int64     index of the label in dict.txt
    path       bytes     the image's path as resolved from the CSV

The book stored float32 pixels flattened at full size: about 17x the JPEG bytes. Keeping the
JPEG keeps the records about as big as the source files (see :func:`size_report`).

Output folder (Beam's default shard names, GZIP)::

    train-00000-of-000NN.gz  valid-...gz  test-...gz
    errors-00000-of-00001.jsonl   one JSON object a line: line, path, label, reason, detail

Every CSV line ends up in exactly one place: a split, or the errors file with a reason from
:data:`REJECT_REASONS`. The job never stops for a bad line. Only a missing/empty CSV or a
labels file with fewer than two labels stop it, before it starts, with a ValueError.

The split is :func:`pmlv_utils.dataset_files.split_for` (a hash of ``<class>/<file>``), so it is
the same on every run and every worker, with any runner.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Iterable, Sequence

from . import dataset_files
from .dataset_files import DEFAULT_FRACTIONS, SPLITS, CsvRow

SCHEMA_VERSION = "jpeg-rgb-1"
REENCODE_QUALITY = 90  # JPEG quality used only when a source must be converted

# Why a line can be rejected (the dead-letter ``reason`` field).
EMPTY_LINE = dataset_files.EMPTY_LINE
MALFORMED_LINE = dataset_files.MALFORMED_LINE
UNKNOWN_LABEL = "unknown label"
MISSING_FILE = "missing file"
READ_ERROR = "read error"
EMPTY_FILE = "empty file"
NOT_AN_IMAGE = "not an image"
CORRUPT_IMAGE = "corrupt image"
IMAGE_TOO_LARGE = "image too large"
REJECT_REASONS = (
    EMPTY_LINE,
    MALFORMED_LINE,
    UNKNOWN_LABEL,
    MISSING_FILE,
    READ_ERROR,
    EMPTY_FILE,
    NOT_AN_IMAGE,
    CORRUPT_IMAGE,
    IMAGE_TOO_LARGE,
)

ERRORS_PREFIX = "errors"
METRICS_NAMESPACE = "pmlv_tfrecords"
LOCAL_RUNNERS = ("DirectRunner",)
RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
REPO_ROOT = Path(__file__).resolve().parents[1]

# The book's own measurement (ANCHOR_FIGURES.md): 5 images as float32 pixels -> one file of
# 8,777,320 bytes; the whole data set was estimated at ~17x the JPEGs.
BOOK_FLOAT32_BYTES_5_IMAGES = 8_777_320
BOOK_FLOAT32_OVER_JPEG = 17


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


def make_example(image: bytes, shape: Sequence[int], label: str, label_int: int, path: str):
    """A ``tf.train.Example`` in the course's schema (call ``.SerializeToString()`` to write)."""
    import tensorflow as tf

    def _bytes(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def _ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": _bytes([image]),
                "shape": _ints(shape),
                "label": _bytes([label.encode("utf-8")]),
                "label_int": _ints([label_int]),
                "path": _bytes([path.encode("utf-8")]),
            }
        )
    )


def feature_spec() -> dict:
    """The ``tf.io.parse_single_example`` spec of the schema."""
    import tensorflow as tf

    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "shape": tf.io.FixedLenFeature([3], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.string),
        "label_int": tf.io.FixedLenFeature([], tf.int64),
        "path": tf.io.FixedLenFeature([], tf.string),
    }


def parse_example(serialized):
    """Parse one serialized record into a dict of tensors (usable inside ``tf.data`` maps)."""
    import tensorflow as tf

    return tf.io.parse_single_example(serialized, feature_spec())


def decode_image(image_bytes):
    """The stored JPEG as a uint8 tensor [height, width, 3]."""
    import tensorflow as tf

    return tf.io.decode_jpeg(image_bytes, channels=3)


# --------------------------------------------------------------------------------------
# One image: check, and convert to an RGB JPEG only when needed
# --------------------------------------------------------------------------------------


class ImageRejected(Exception):
    """An input that cannot become a record; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def _as_rgb(img):
    """A PIL image in RGB mode: alpha composited on white, 16-bit/float scaled to 8-bit."""
    import numpy as np
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def to_rgb_jpeg(
    data: bytes, quality: int = REENCODE_QUALITY
) -> tuple[bytes, tuple[int, int, int], str | None]:
    """``(jpeg_bytes, (h, w, 3), converted_from)`` for the bytes of an image file.

    An RGB JPEG is returned unchanged (``converted_from`` None). Anything else PIL can decode
    (grayscale or CMYK JPEG, PNG, GIF, ... whatever the file's name) is converted to RGB and
    re-encoded; ``converted_from`` says what it was, e.g. ``"JPEG/CMYK"``. The whole image is
    decoded, so a truncated file is caught here. Raises :class:`ImageRejected`.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageRejected(EMPTY_FILE, "0 bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageRejected(NOT_AN_IMAGE, str(e).split(" <")[0]) from e
    except Image.DecompressionBombError as e:
        raise ImageRejected(IMAGE_TOO_LARGE, str(e)) from e
    except Exception as e:  # noqa: BLE001 - any decoder failure is a corrupt image
        raise ImageRejected(CORRUPT_IMAGE, f"{type(e).__name__}: {e}") from e
    try:
        img.load()
    except Image.DecompressionBombError as e:
        raise ImageRejected(IMAGE_TOO_LARGE, str(e)) from e
    except Exception as e:  # noqa: BLE001
        raise ImageRejected(CORRUPT_IMAGE, f"{type(e).__name__}: {e}") from e
    shape = (img.height, img.width, 3)
    if img.width < 1 or img.height < 1:
        raise ImageRejected(CORRUPT_IMAGE, f"size {img.width}x{img.height}")
    # MPO is how PIL names multi-picture camera JPEGs: their bytes decode as an ordinary JPEG.
    if img.format in ("JPEG", "MPO") and img.mode == "RGB":
        return data, shape, None
    source = f"{img.format}/{img.mode}"
    out = io.BytesIO()
    _as_rgb(img).save(out, "JPEG", quality=quality)
    return out.getvalue(), shape, source


def read_bytes(path: str) -> bytes:
    """The bytes of a local or gs:// file; :class:`ImageRejected` when missing or unreadable."""
    import tensorflow as tf

    try:
        if not tf.io.gfile.exists(path):
            raise ImageRejected(MISSING_FILE, "no such file")
        if tf.io.gfile.isdir(path):
            raise ImageRejected(READ_ERROR, "is a directory")
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except ImageRejected:
        raise
    except Exception as e:  # noqa: BLE001 - permissions, network, ...
        raise ImageRejected(READ_ERROR, f"{type(e).__name__}: {e}") from e


def error_record(row: CsvRow, reason: str, detail: str = "") -> dict:
    """One dead-letter line. Malformed lines keep their raw text in ``detail``."""
    if not detail and reason == MALFORMED_LINE:
        detail = row.text.strip()[:500]
    return {
        "line": row.line,
        "path": row.path,
        "label": row.label,
        "reason": reason,
        "detail": detail,
    }


# --------------------------------------------------------------------------------------
# The Beam pipeline
# --------------------------------------------------------------------------------------


def _read_csv(path: str) -> Iterable[CsvRow]:
    return dataset_files.iter_all_data(path)


def _make_convert_fn(labels: Sequence[str], fractions: Sequence[float]):
    """The DoFn: a CsvRow -> a serialized record on its split's output, or a dead letter."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    class CsvRowToRecord(beam.DoFn):
        def __init__(self):
            self.label_index = {label: i for i, label in enumerate(labels)}
            self.fractions = tuple(fractions)

        def setup(self):
            import tensorflow  # noqa: F401  (load once per worker, not inside the first element)

        def _reject(self, row, reason, detail=""):
            Metrics.counter(METRICS_NAMESPACE, f"rejected/{reason}").inc()
            return beam.pvalue.TaggedOutput(
                ERRORS_PREFIX, json.dumps(error_record(row, reason, detail))
            )

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
            yield beam.pvalue.TaggedOutput(split, example.SerializeToString())

    return CsvRowToRecord()


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


def requirements_for_workers() -> list[str]:
    """Pinned packages the Dataflow workers need beyond Beam (from this environment)."""
    from importlib.metadata import version

    return [f"tensorflow=={version('tensorflow')}", f"pillow=={version('pillow')}"]


def build_pipeline_options(
    runner: str = "DirectRunner",
    output_dir: str = "",
    project_id=None,
    region=None,
    job_name=None,
    num_workers=None,
    direct_num_workers=None,
    direct_running_mode=None,
    extra_args=None,
    requirements_dir=None,
):
    """PipelineOptions for a local run or a Dataflow submission (validated, with clear errors).

    Dataflow: project and region are required; ``output_dir`` must be ``gs://`` (temp and
    staging go under it); the workers install this package (``pyproject.toml``, as
    ``--setup_file``) and a pinned requirements file written to ``requirements_dir``.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    args = [f"--runner={runner}"]
    if runner == "DataflowRunner":
        if not project_id or not region:
            raise ValueError("DataflowRunner needs --project_id and --region")
        if not str(output_dir).startswith("gs://"):
            raise ValueError(
                f"DataflowRunner writes from cloud workers: --output_dir must be gs://, got {output_dir}"
            )
        if direct_num_workers or direct_running_mode:
            raise ValueError(
                "direct_num_workers / direct_running_mode only apply to the DirectRunner"
            )
        out = str(output_dir).rstrip("/")
        job_name = job_name or "flowers-tfrecords-" + time.strftime("%Y%m%d-%H%M%S")
        args += [
            f"--project={project_id}",
            f"--region={region}",
            f"--job_name={job_name}",
            f"--temp_location={out}/tmp",
            f"--staging_location={out}/staging",
        ]
        req_dir = Path(requirements_dir or os.environ.get("TMPDIR", "/tmp"))
        req_dir.mkdir(parents=True, exist_ok=True)
        req_file = req_dir / "dataflow_requirements.txt"
        req_file.write_text("\n".join(requirements_for_workers()) + "\n")
        args += [f"--requirements_file={req_file}", "--requirements_cache=skip"]
        if (REPO_ROOT / "pyproject.toml").exists():
            args.append(f"--setup_file={REPO_ROOT / 'pyproject.toml'}")
        if num_workers:
            args.append(f"--max_num_workers={int(num_workers)}")
    elif runner in LOCAL_RUNNERS:
        if num_workers:
            raise ValueError("num_workers is for Dataflow; use direct_num_workers locally")
        if direct_running_mode is not None:
            if direct_running_mode not in RUNNING_MODES:
                raise ValueError(
                    f"direct_running_mode must be one of {RUNNING_MODES}, got {direct_running_mode!r}"
                )
            args.append(f"--direct_running_mode={direct_running_mode}")
        if direct_num_workers:
            args.append(f"--direct_num_workers={int(direct_num_workers)}")
    else:
        raise ValueError(
            f"runner must be one of {LOCAL_RUNNERS + ('DataflowRunner',)}, got {runner!r}"
        )
    args += list(extra_args or [])
    return PipelineOptions(args)


def output_files(output_dir: str) -> list[str]:
    """Files of a previous run in ``output_dir`` (shards of every split and the errors file)."""
    import tensorflow as tf

    found = []
    for prefix, suffix in [(s, ".gz") for s in SPLITS] + [(ERRORS_PREFIX, ".jsonl")]:
        found += tf.io.gfile.glob(f"{str(output_dir).rstrip('/')}/{prefix}-?????-of-?????{suffix}")
    return sorted(found)


def _metric_counts(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter

    totals: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + int(value or 0)
    return totals


@contextlib.contextmanager
def _quiet_worker_warnings():
    """Hide the DirectRunner's forwarded worker start-up warnings (multi_processing) while a
    job runs; errors still show."""
    logger = logging.getLogger("apache_beam.runners.portability.local_job_service")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_pipeline(
    all_data: str,
    labels_file: str,
    output_dir: str,
    runner: str = "DirectRunner",
    project_id=None,
    region=None,
    num_shards=None,
    direct_num_workers=None,
    direct_running_mode=None,
    extra_args=None,
    *,
    num_workers=None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    job_name=None,
    wait=None,
    verbose: bool = True,
) -> dict:
    """Run the CSV -> TFRecords job; return its counts.

    Returns ``{"written": {split: n}, "rejected": {reason: n}, "converted": {"JPEG/L": n, ...},
    "total_written", "total_rejected", "shards": {split: n}, "seconds", "runner"}``.
    Local runs wait for the job; a Dataflow submission returns at once (``wait=False``) with
    ``job_id`` and ``state`` instead of counts, unless ``wait=True``.
    Raises ValueError (before any work) for an empty CSV or fewer than two labels.
    """
    import apache_beam as beam
    from apache_beam.io.filesystem import CompressionTypes

    if runner == "DataflowRunner" and not str(all_data).startswith("gs://"):
        raise ValueError(f"DataflowRunner workers cannot read a local CSV: {all_data}")
    labels = dataset_files.read_labels(labels_file)
    n_lines = count_csv_lines(all_data)
    shards = shard_counts(num_shards, n_lines, fractions)
    dataset_files.split_for("a/b", fractions)  # validates the fractions
    options = build_pipeline_options(
        runner,
        output_dir,
        project_id,
        region,
        job_name,
        num_workers,
        direct_num_workers,
        direct_running_mode,
        extra_args,
    )
    local = runner in LOCAL_RUNNERS
    if local:
        os.makedirs(output_dir, exist_ok=True)
    import tensorflow as tf

    stale = output_files(output_dir)
    for f in stale:  # an earlier run with another shard count would otherwise be read too
        tf.io.gfile.remove(f)
    if stale and verbose:
        print(f"removed {len(stale)} file(s) of an earlier run from the output folder")

    out = str(output_dir).rstrip("/")
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    parts = (
        pipeline
        | "csv path" >> beam.Create([str(all_data)])
        | "read csv lines" >> beam.FlatMap(_read_csv)
        | "spread over workers" >> beam.Reshuffle()
        | "to records"
        >> beam.ParDo(_make_convert_fn(labels, fractions)).with_outputs(*SPLITS, ERRORS_PREFIX)
    )
    for split in SPLITS:
        _ = parts[split] | f"write {split}" >> beam.io.WriteToTFRecord(
            f"{out}/{split}",
            file_name_suffix=".gz",
            num_shards=shards[split],
            compression_type=CompressionTypes.GZIP,
        )
    _ = parts[ERRORS_PREFIX] | "write errors" >> beam.io.WriteToText(
        f"{out}/{ERRORS_PREFIX}", file_name_suffix=".jsonl", num_shards=1
    )

    if wait is None:
        wait = local
    with _quiet_worker_warnings():
        result = pipeline.run()
        if wait:
            result.wait_until_finish()
    if not wait:
        info = {
            "runner": runner,
            "job_id": getattr(result, "job_id", lambda: None)(),
            "state": str(result.state),
            "shards": shards,
        }
        if verbose:
            print(f"submitted {runner} job {info['job_id']} ({info['state']}); output: {out}")
        return info
    seconds = time.perf_counter() - start
    metrics = _metric_counts(result)
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
    if verbose:
        print(format_counts(counts))
    return counts


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


# --------------------------------------------------------------------------------------
# Reading the output back
# --------------------------------------------------------------------------------------


def _dataset(pattern):
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(str(pattern)))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {pattern}")
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    return tf.data.TFRecordDataset(files, compression_type=compression)


def count_records(pattern: str) -> int:
    """Number of records in the files matching ``pattern`` (GZIP when they end in .gz)."""
    return int(_dataset(pattern).reduce(0, lambda n, _: n + 1).numpy())


def read_records(
    pattern: str, limit: int | None = None, decode: bool = False, max_side: int | None = None
) -> list[dict]:
    """Records as Python dicts (``image`` bytes, ``shape`` tuple, ``label`` str, ``label_int``,
    ``path`` str; with ``decode``, ``pixels``: uint8 array [h, w, 3], shrunk to at most
    ``max_side`` pixels a side when given)."""
    import numpy as np

    ds = _dataset(pattern).map(parse_example)
    if limit is not None:
        ds = ds.take(limit)
    records = []
    for ex in ds:
        rec = {
            "image": ex["image"].numpy(),
            "shape": tuple(int(v) for v in ex["shape"].numpy()),
            "label": ex["label"].numpy().decode(),
            "label_int": int(ex["label_int"].numpy()),
            "path": ex["path"].numpy().decode(),
        }
        if decode:
            rec["pixels"] = decode_image(rec["image"]).numpy()
            if max_side and max(rec["pixels"].shape[:2]) > max_side:
                from PIL import Image

                small = Image.fromarray(rec["pixels"])
                small.thumbnail((max_side, max_side))
                rec["pixels"] = np.asarray(small)
        records.append(rec)
    return records


def read_errors(output_dir: str) -> list[dict]:
    """The dead-letter records of a run, sorted by CSV line."""
    import tensorflow as tf

    rows = []
    for name in tf.io.gfile.glob(f"{str(output_dir).rstrip('/')}/{ERRORS_PREFIX}-*-of-*.jsonl"):
        with tf.io.gfile.GFile(name, "r") as f:
            rows += [json.loads(s) for s in f.read().splitlines() if s.strip()]
    return sorted(rows, key=lambda r: (r["line"], r["reason"]))


def size_report(all_data: str, output_dir: str, gzip_sample: int = 5) -> dict:
    """Bytes of the source JPEGs vs our TFRecords vs the book's float32 schema.

    Counts the images that were written (their paths and shapes are read back from the
    records). ``float32_bytes`` is the book's schema uncompressed (h*w*3*4 per image);
    ``float32_gzip_ratio`` is how much GZIP shrinks it, measured on ``gzip_sample`` images.
    """
    import gzip

    import numpy as np
    import tensorflow as tf

    del all_data  # the written records name their own source files
    records = read_records(f"{str(output_dir).rstrip('/')}/*-*-of-*.gz")
    if not records:
        raise ValueError(f"no records in {output_dir}")
    jpeg_bytes = sum(tf.io.gfile.stat(r["path"]).length for r in records)
    shards = [
        f for s in SPLITS for f in tf.io.gfile.glob(dataset_files.split_pattern(output_dir, s))
    ]
    tfrecord_bytes = sum(tf.io.gfile.stat(f).length for f in shards)
    float32_bytes = sum(h * w * c * 4 for h, w, c in (r["shape"] for r in records))
    raw, packed = 0, 0
    for r in records[:gzip_sample]:
        pixels = (decode_image(r["image"]).numpy().astype(np.float32) / 255.0).tobytes()
        raw, packed = raw + len(pixels), packed + len(gzip.compress(pixels, compresslevel=6))
    return {
        "images": len(records),
        "jpeg_bytes": jpeg_bytes,
        "tfrecord_bytes": tfrecord_bytes,
        "float32_bytes": float32_bytes,
        "tfrecord_over_jpeg": tfrecord_bytes / jpeg_bytes,
        "float32_over_jpeg": float32_bytes / jpeg_bytes,
        "float32_gzip_ratio": packed / raw if raw else math.nan,
    }


# --------------------------------------------------------------------------------------
# A small bad-input set, to see the dead-letter output at work
# --------------------------------------------------------------------------------------


def write_bad_input_demo(
    folder: str, good_rows: Sequence[tuple[str, str]], labels: Sequence[str]
) -> tuple[str, str, dict[int, str]]:
    """Write a CSV mixing ``good_rows`` ((path, label), at least one) with one line of every
    problem kind, plus the files those lines point to, under the local ``folder``.

    The first good image is re-saved as grayscale JPEG, CMYK JPEG and PNG-named-.jpg (these
    must be converted, not rejected) and cut in half (a truncated JPEG). Returns
    ``(csv_path, labels_path, expected)``; ``expected`` maps each CSV line number to the
    reject reason, or to ``"ok"`` / ``"ok, converted from <format/mode>"``.
    """
    from PIL import Image

    if not good_rows:
        raise ValueError("write_bad_input_demo needs at least one good (path, label) row")
    root = Path(folder)
    first_path, first_label = good_rows[0]
    source = read_bytes(first_path)
    picture = Image.open(io.BytesIO(source)).convert("RGB")
    base = root / first_label
    base.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    expected: dict[int, str] = {}

    def add(text: str, outcome: str) -> None:
        lines.append(text)
        expected[len(lines)] = outcome

    for path, label in good_rows:
        add(f"{path},{label}", "ok")
    picture.convert("L").save(base / "grayscale.jpg", "JPEG", quality=90)
    add(f"{base / 'grayscale.jpg'},{first_label}", "ok, converted from JPEG/L")
    picture.convert("CMYK").save(base / "cmyk.jpg", "JPEG", quality=90)
    add(f"{base / 'cmyk.jpg'},{first_label}", "ok, converted from JPEG/CMYK")
    picture.save(base / "png_named.jpg", "PNG")
    add(f"{base / 'png_named.jpg'},{first_label}", "ok, converted from PNG/RGB")
    (base / "truncated.jpg").write_bytes(source[: len(source) // 2])
    add(f"{base / 'truncated.jpg'},{first_label}", CORRUPT_IMAGE)
    (base / "readme.jpg").write_text("a text file with an image's name\n")
    add(f"{base / 'readme.jpg'},{first_label}", NOT_AN_IMAGE)
    (base / "zero_bytes.jpg").write_bytes(b"")
    add(f"{base / 'zero_bytes.jpg'},{first_label}", EMPTY_FILE)
    add(f"{base / 'deleted.jpg'},{first_label}", MISSING_FILE)
    add("", EMPTY_LINE)
    add(f"{first_path},orchids", UNKNOWN_LABEL)
    name = first_path.rsplit("/", 1)[-1]
    add(f"{first_label}/{name}", MALFORMED_LINE)  # no label
    add(f"{first_label}/{name},{first_label},extra", MALFORMED_LINE)  # one field too many
    csv_path, labels_path = root / "all_data.csv", root / "dict.txt"
    csv_path.write_text("\n".join(lines) + "\n")
    labels_path.write_text("".join(f"{label}\n" for label in labels))
    return str(csv_path), str(labels_path), expected
