"""Evaluation of TFLite models against the SavedModel: accuracy, latency, size, agreement.

Also :func:`load_split_images`, the images of a TFRecord split (for calibration and evaluation).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from .. import ingest
from .classifier import TFLiteClassifier, check_float_images
from .conversion import MODEL_SIGNATURE, OUTPUT_NAME, model_signature, savedmodel_size_bytes


def _summary(
    name: str,
    probabilities: np.ndarray,
    labels,
    latencies_s: list[float],
    size_bytes: int,
    reference_probabilities=None,
) -> dict:
    predicted = probabilities.argmax(axis=1)
    row = dict(
        model=name,
        size_bytes=int(size_bytes),
        accuracy=float(np.mean(predicted == np.asarray(labels)))
        if len(predicted)
        else float("nan"),
        latency_ms_median=1000 * statistics.median(latencies_s) if latencies_s else float("nan"),
    )
    if reference_probabilities is not None:
        row["agreement"] = float(
            np.mean(predicted == np.asarray(reference_probabilities).argmax(axis=1))
        )
    return row


def evaluate_tflite(
    path: str | os.PathLike,
    images,
    labels,
    reference_probabilities=None,
    num_threads: int | None = 1,
    warmup: int = 3,
) -> dict:
    """Run a .tflite model on every image, one at a time.

    Returns {model, size_bytes, accuracy, latency_ms_median, agreement (if
    ``reference_probabilities`` is given: fraction of images with the same top class),
    probabilities}. Latency is the median of per-image invokes after ``warmup`` untimed ones.
    """
    clf = TFLiteClassifier(path, num_threads=num_threads)
    batch = check_float_images(images, clf.image_shape)
    if len(batch) != len(labels):
        raise ValueError(f"{len(batch)} images but {len(labels)} labels")
    if warmup and len(batch):
        clf.predict(batch[:warmup])
    probabilities = clf.predict(batch)
    row = _summary(
        Path(path).stem.replace("model_", "tflite_"),
        probabilities,
        labels,
        clf.last_latencies_s,
        Path(path).stat().st_size,
        reference_probabilities,
    )
    row["probabilities"] = probabilities
    return row


def evaluate_savedmodel(
    export_dir: str | os.PathLike, images, labels, signature: str = MODEL_SIGNATURE, warmup: int = 3
) -> dict:
    """The same measurements for the SavedModel's model signature (one image per call)."""
    _, fn, input_name, image_shape = model_signature(export_dir, signature)
    batch = check_float_images(images, image_shape)
    if len(batch) != len(labels):
        raise ValueError(f"{len(batch)} images but {len(labels)} labels")
    for image in batch[:warmup]:
        fn(**{input_name: tf.constant(image[None])})
    probabilities = np.empty(
        (len(batch), int(fn.structured_outputs[OUTPUT_NAME].shape[-1] or 0)), np.float32
    )
    latencies = []
    for i, image in enumerate(batch):
        start = time.perf_counter()
        probabilities[i] = fn(**{input_name: tf.constant(image[None])})[OUTPUT_NAME].numpy()[0]
        latencies.append(time.perf_counter() - start)
    row = _summary(
        "savedmodel", probabilities, labels, latencies, savedmodel_size_bytes(export_dir)
    )
    row["probabilities"] = probabilities
    return row


def compare_with_savedmodel(
    export_dir: str | os.PathLike,
    tflite_paths: dict[str, os.PathLike],
    images,
    labels,
    num_threads: int | None = 1,
):
    """A pandas table: one row for the SavedModel and one per TFLite model.

    Columns: size (MB and as a fraction of float32 TFLite), test accuracy, accuracy change vs the
    SavedModel (points), agreement with the SavedModel's top class, median latency per image.
    """
    reference = evaluate_savedmodel(export_dir, images, labels)
    rows = [reference] + [
        evaluate_tflite(p, images, labels, reference["probabilities"], num_threads)
        for p in tflite_paths.values()
    ]
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "probabilities"} for r in rows])
    table.loc[0, "agreement"] = 1.0
    table["size_mb"] = table["size_bytes"] / 1e6
    float_size = table.loc[table["model"] == "tflite_float32", "size_bytes"]
    if len(float_size):
        table["size_vs_float32_tflite"] = table["size_bytes"] / float(float_size.iloc[0])
    table["accuracy_change_points"] = 100 * (table["accuracy"] - reference["accuracy"])
    columns = [
        "model",
        "size_mb",
        "size_vs_float32_tflite",
        "accuracy",
        "accuracy_change_points",
        "agreement",
        "latency_ms_median",
    ]
    return table[[c for c in columns if c in table]].set_index("model")


def load_split_images(
    tfrecord_dir: str | os.PathLike, split: str, img_size: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, S, S, 3] in [0, 1], label ids [N]) of one TFRecord split, in file order.

    Read with :func:`pmlv_utils.ingest.make_dataset` (evaluation mode: deterministic order),
    so images are decoded by THE preprocessing function, exactly as in training and serving.
    """
    ds = ingest.make_dataset(
        str(Path(tfrecord_dir) / f"{split}-*"), batch_size=None, img_size=img_size, training=False
    )
    if limit:
        ds = ds.take(limit)
    images, labels = [], []
    for image, label in ds.as_numpy_iterator():
        images.append(image)
        labels.append(int(label))
    if not images:
        raise ValueError(f"split '{split}' in {tfrecord_dir} has no records")
    return np.stack(images), np.asarray(labels)
