"""In-memory prediction on image files or bytes, outputs as plain JSON rows, notebook tables.

Taught in 09_deploying/09a_inmemory.ipynb, section 2 (the signature called and its tensors turned
into rows by hand, then :func:`predict_files`).

Example::

    model = LoadedModel(export_dir)
    rows = predict_files(["a.jpg", "b.jpg"], model)
    # [{"filename": "a.jpg", "flower_type_str": "roses", "flower_type_int": 2,
    #   "probability": [...5 floats...]}, ...]

Missing and undecodable files are named in the errors, before TensorFlow's generic ones.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from .. import dataset_files, image_limits, safe_io
from ..tfrecords import images
from .model import DEFAULT_SIGNATURE, LoadedModel

MAX_FILE_BYTES = images.MAX_FILE_BYTES  # batch jobs refuse bigger files before reading them

# --------------------------------------------------------------------------------------
# Outputs as plain JSON rows
# --------------------------------------------------------------------------------------


def to_json_value(value: Any) -> Any:
    """A numpy value (array, scalar, bytes) as plain JSON types."""
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
# Prediction on files / bytes
# --------------------------------------------------------------------------------------


def _as_model(model_or_dir) -> LoadedModel:
    return model_or_dir if isinstance(model_or_dir, LoadedModel) else LoadedModel(model_or_dir)


def missing_files(filenames: Iterable[str]) -> list[str]:
    """The file names that do not exist (local or gs://)."""
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
    for item in items:
        try:
            call_one([item])
        except tf.errors.OpError:
            return item
    return None


class ImageRefused(ValueError):
    """A file a batch job does not predict on; ``reason`` is its dead-letter text."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_image_checked(
    path: str, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = image_limits.DEFAULT_MAX_PIXELS
) -> bytes:
    """The bytes of an image file a batch job may decode; :class:`ImageRefused` otherwise.

    Opened once and checked on the open file (a regular file of at most ``max_bytes``; a FIFO
    or a device is refused without blocking), then the pixel budget and the format allowlist
    are read from the header (``image_limits.check``) before anything decodes it."""
    try:
        data = images.read_bytes(str(path), max_bytes)
    except images.ImageRejected as err:
        if err.reason == images.MISSING_FILE:
            raise ImageRefused(path, "file not found") from None
        if err.detail == "is a directory":
            raise ImageRefused(path, "is a directory") from None
        raise ImageRefused(path, f"{err.reason}: {err.detail}") from None
    try:
        image_limits.check(data, max_pixels=max_pixels)
    except image_limits.ImageTooLarge as err:
        raise ImageRefused(path, f"image too large: {err}") from None
    except image_limits.NotAnImage as err:
        raise ImageRefused(
            path, f"not a decodable image: {err}" if data else "empty file"
        ) from None
    return data


def classify_file_error(filename: str) -> str:
    """Why a file cannot be predicted on (for dead-letter records)."""
    if not tf.io.gfile.exists(filename):
        return "file not found"
    if tf.io.gfile.isdir(filename):
        return "is a directory"
    return "not a decodable image"


def csv_paths(csv_path: str) -> Iterator[tuple[int, str | None]]:
    """``(line, path)`` of every non-blank line of a CSV's first column (the book's
    ``all_data.csv``, or a list of paths); ``path`` None for a line that is not UTF-8.

    Read as bytes line by line (BOM dropped), parsed with the ``csv`` module (a quoted path may
    hold commas), relative paths resolved against the CSV's folder. One path a line per line:
    a path listed twice is predicted twice."""
    base = dataset_files.csv_folder(csv_path)
    for number, text, _ in dataset_files.iter_lines(csv_path):
        if text is None:
            yield number, None
            continue
        fields = dataset_files.csv_fields(text) if text.strip() else []
        if fields and fields[0]:
            yield number, dataset_files.resolve_path(fields[0], base)


def time_in_memory(
    model: LoadedModel, filenames: Sequence[str], batch_size: int = 32, repeats: int = 3
) -> dict:
    """Images/s of in-memory ``serving_default`` calls on batches: the median of ``repeats`` passes.

    The median, not the best pass: on a shared machine the best of a few short passes is a
    lucky draw, and the figures it is compared with (a load test) are single long runs.
    """
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
    """A DataFrame of prediction rows: image (class/file), predicted label, its probability."""
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
