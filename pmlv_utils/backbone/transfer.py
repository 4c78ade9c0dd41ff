"""Few labels: from scratch vs the offline backbone as a frozen feature extractor, same test.

Frozen, as the book's TF-Hub layer: measured at 10 and 30 labels a class, training all of
the backbone's layers on so few images (Adam, 1e-3 or 2e-4) did worse than freezing it.

:func:`fine_tune_table` keeps ``k`` training images per class (the first ``k`` of each class
in a seeded shuffle, the same images for every variant), trains each variant with the
trainer (same validation split for early stopping, same test split), and tabulates the test
accuracy. The variants are :class:`~pmlv_utils.training.TrainConfig` changes
(:data:`VARIANTS`); ``weights`` is filled in with the backbone file. Taught in
07_training/07e_augment_transfer.ipynb ("Transfer learning offline"), which writes the frozen
model in plain Keras and checks it against the trainer's ``build_model``.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pandas as pd
import tensorflow as tf

from .. import dataset_files, ingest, tfrecords
from ..training import TrainConfig, train_and_export
from . import pretrain

# name -> TrainConfig changes; "weights" True means "the backbone file".
VARIANTS = {
    "scratch (small_cnn)": dict(model_kind="small_cnn"),
    "pretrained, frozen (mobilenetv2)": dict(
        model_kind="mobilenetv2", weights=True, freeze_backbone=True, lrate=3e-3
    ),
}
SUBSET_SHARD = "train-00000-of-00001.gz"


def subset_per_class(
    train_pattern: str, out_dir: str, per_class: int, seed: int = 0
) -> dict[int, int]:
    """Write the first ``per_class`` records of each class (in a seeded shuffle of the
    ``train_pattern`` records) to ``<out_dir>/train-00000-of-00001.gz``; returns
    ``{label_int: records kept}`` (fewer when a class has fewer)."""
    files = ingest.list_shards(train_pattern)
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    labels = [int(tfrecords.parse_example(r)["label_int"]) for r in records]
    order = np.random.default_rng(seed).permutation(len(records))
    kept: dict[int, int] = {}
    os.makedirs(out_dir, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(os.path.join(out_dir, SUBSET_SHARD), options) as writer:
        for i in order:
            if kept.get(labels[i], 0) < per_class:
                writer.write(records[i])
                kept[labels[i]] = kept.get(labels[i], 0) + 1
    return dict(sorted(kept.items()))


def _subset_dir(tfrecord_dir: str, work_dir: str, per_class: int, seed: int) -> tuple[str, int]:
    """A TFRecord folder with ``per_class`` training images a class and the original
    validation and test shards (linked); returns (folder, training images)."""
    folder = os.path.join(work_dir, f"data_{per_class}")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    kept = subset_per_class(
        dataset_files.split_pattern(tfrecord_dir, "train"), folder, per_class, seed
    )
    for split in ("valid", "test"):
        for path in ingest.list_shards(dataset_files.split_pattern(tfrecord_dir, split)):
            os.symlink(os.path.abspath(path), os.path.join(folder, os.path.basename(path)))
    return folder, sum(kept.values())


def fine_tune_table(
    tfrecord_dir: str,
    labels_file: str,
    backbone_dir: str,
    work_dir: str,
    labels_per_class=(10, 30, 100, 200),
    config: TrainConfig | None = None,
    variants: dict | None = None,
    log=print,
) -> pd.DataFrame:
    """Test accuracy per (labelled images per class, variant); one row per run.

    config: the settings every variant shares (img_size, num_epochs, patience, seed...);
    variants: name -> TrainConfig changes (default :data:`VARIANTS`; ``weights=True``
    stands for the backbone's weights file, whose ``alpha`` is filled in too).
    Columns: labels_per_class, train_images, variant, test_accuracy, val_accuracy,
    best_epoch, epochs_run, seconds. :func:`pivot` makes the scratch-vs-fine-tuned table.
    """
    config = config or TrainConfig()
    variants = variants or VARIANTS
    info = pretrain.read_info(backbone_dir)
    rows = []
    for k in labels_per_class:
        data_dir, n_train = _subset_dir(str(tfrecord_dir), str(work_dir), int(k), config.seed)
        for name, changes in variants.items():
            changes = dict(changes)
            if changes.get("weights") is True:
                changes.update(weights=pretrain.weights_path(backbone_dir), alpha=info["alpha"])
            start = time.perf_counter()
            m = train_and_export(
                os.path.join(str(work_dir), f"job_{k}_{len(rows)}"),
                data_dir,
                str(labels_file),
                config.replace(**changes),
                export=False,
                tensorboard=False,
                verbose=0,
                log=lambda *a, **kw: None,
            )
            row = dict(
                labels_per_class=int(k),
                train_images=n_train,
                variant=name,
                test_accuracy=m["test_accuracy"],
                val_accuracy=m["val_accuracy"],
                best_epoch=m["best_epoch"],
                epochs_run=m["epochs_run"],
                seconds=round(time.perf_counter() - start, 1),
            )
            log(
                f"{k:4d} a class ({n_train} images), {name}: test {row['test_accuracy']:.3f} "
                f"(best epoch {row['best_epoch']}/{row['epochs_run']}, {row['seconds']:.0f} s)"
            )
            rows.append(row)
    return pd.DataFrame(rows)


def pivot(table: pd.DataFrame) -> pd.DataFrame:
    """labels_per_class x variant -> test accuracy (the book-style comparison)."""
    return table.pivot(index="labels_per_class", columns="variant", values="test_accuracy")
