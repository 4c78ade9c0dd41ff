"""Reading a run's output back: records, dead letters, file lists and the size comparison.

Output folder (Beam's default shard names, GZIP)::

    train-00000-of-000NN.gz  valid-...gz  test-...gz
    errors-00000-of-00001.jsonl   one JSON object a line: line, path, label, reason, detail
    dict.txt                      the labels, one a line (the trainer needs only this folder)
"""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import tensorflow as tf
from PIL import Image

from .. import dataset_files
from ..dataset_files import SPLITS
from .examples import decode_image, parse_example
from .images import ERRORS_PREFIX

# The book's own measurement (ANCHOR_FIGURES.md): 5 images as float32 pixels -> one file of
# 8,777,320 bytes; the whole data set was estimated at ~17x the JPEGs.
BOOK_FLOAT32_BYTES_5_IMAGES = 8_777_320
BOOK_FLOAT32_OVER_JPEG = 17


def output_files(output_dir: str) -> list[str]:
    """Files of a previous run in ``output_dir`` (shards of every split and the errors file)."""
    found = []
    for prefix, suffix in [(s, ".gz") for s in SPLITS] + [(ERRORS_PREFIX, ".jsonl")]:
        found += tf.io.gfile.glob(f"{str(output_dir).rstrip('/')}/{prefix}-?????-of-?????{suffix}")
    return sorted(found)


def remove_output_files(output_dir: str) -> int:
    """Delete the :func:`output_files` of an earlier run (and the temporary files of a run that
    was killed while writing); returns how many output files there were."""
    stale = output_files(output_dir)
    for f in stale + tf.io.gfile.glob(f"{str(output_dir).rstrip('/')}/.*-of-*.tmp-*"):
        tf.io.gfile.remove(f)
    return len(stale)


def _dataset(pattern) -> tf.data.TFRecordDataset:
    files = sorted(tf.io.gfile.glob(str(pattern)))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {pattern}")
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    return tf.data.TFRecordDataset(files, compression_type=compression)


def count_records(pattern: str) -> int:
    """Number of records in the files matching ``pattern`` (GZIP when they end in .gz)."""
    return int(_dataset(pattern).reduce(0, lambda n, _: n + 1).numpy())


def _shrink(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side or max(pixels.shape[:2]) <= max_side:
        return pixels
    small = Image.fromarray(pixels)
    small.thumbnail((max_side, max_side))
    return np.asarray(small)


def read_records(
    pattern: str, limit: int | None = None, decode: bool = False, max_side: int | None = None
) -> list[dict]:
    """Records as Python dicts (``image`` bytes, ``shape`` tuple, ``label`` str, ``label_int``,
    ``path`` str; with ``decode``, ``pixels``: uint8 array [h, w, 3], shrunk to at most
    ``max_side`` pixels a side when given)."""
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
            rec["pixels"] = _shrink(decode_image(rec["image"]).numpy(), max_side)
        records.append(rec)
    return records


def read_errors(output_dir: str) -> list[dict]:
    """The dead-letter records of a run, sorted by CSV line."""
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
