"""tf.data input pipelines over the course's TFRecords (and over plain JPEG files).

Taught in 07_training/07a_ingest.ipynb ("The pipelines, one switch at a time": every variant
written as a tf.data chain, then checked against :func:`make_variant`).

:func:`make_dataset` is the pipeline training and evaluation use: GZIP TFRecord shards ->
``tfrecords.parse_example`` -> ``preprocess.preprocess_image`` -> batches of
``(images float32 [B, H, W, 3], label_int int64 [B])``.

The book's chapter 7 builds the same pipeline step by step and times each step; the named
variants below (:data:`READ_VARIANTS`, :data:`TRAIN_VARIANTS`, :func:`make_variant`) are those
steps, and :func:`make_bytes_dataset` is the "ceiling": decode + resize of image bytes already
in memory, with no file I/O and no record parsing.

Bad input is never silent: a pattern that matches no file, a shard that is not a readable
GZIP TFRecord file (TensorFlow's own error would not name the file, and it reads a truncated
GZIP shard as a shorter shard without any error), or shards that hold no record at all raise
an error that names the pattern or the file.
"""

from __future__ import annotations

import gzip
import struct
from typing import Iterable, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from . import preprocess, tfrecords

AUTOTUNE = tf.data.AUTOTUNE

__all__ = [
    "ShardError",
    "list_shards",
    "check_shards",
    "make_dataset",
    "make_file_dataset",
    "load_image_bytes",
    "make_bytes_dataset",
    "READ_VARIANTS",
    "TRAIN_VARIANTS",
    "make_variant",
    "drain",
]


class ShardError(ValueError):
    """A TFRecord shard that cannot be read; the message names the file."""


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def list_shards(pattern: str | Sequence[str]) -> list[str]:
    """Sorted files matching ``pattern`` (a glob, local or ``gs://``, or a list of globs).

    Raises FileNotFoundError naming the pattern when nothing matches.
    """
    patterns = (
        [pattern]
        if isinstance(pattern, (str, bytes)) or hasattr(pattern, "__fspath__")
        else list(pattern)
    )
    files: list[str] = []
    for p in patterns:
        files.extend(tf.io.gfile.glob(str(p)))
    if not files:
        raise FileNotFoundError(f"No TFRecord files match the pattern {pattern!r}")
    return sorted(set(files))


def _count_records(stream, name: str) -> int:
    """Walk the TFRecord framing of a decompressed stream; return the number of records."""
    count = 0
    while True:
        header = stream.read(12)  # uint64 length + uint32 masked CRC of the length
        if not header:
            return count
        if len(header) < 12:
            raise ShardError(f"{name}: truncated record header after {count} records")
        (length,) = struct.unpack("<Q", header[:8])
        body = stream.read(length + 4)  # data + uint32 masked CRC of the data
        if len(body) < length + 4:
            raise ShardError(f"{name}: truncated record {count} (expected {length} bytes)")
        count += 1


def check_shards(files: Iterable[str], compression: str = "GZIP") -> dict[str, int]:
    """Read every shard once and return ``{file: number of records}``.

    Catches what TensorFlow would miss or report without a file name: files that are
    not GZIP, truncated GZIP streams, empty (0-byte) files and broken record framing.
    A shard with zero records is valid (Beam writes empty shards), a 0-byte file is not.
    """
    counts = {}
    for name in files:
        try:
            with tf.io.gfile.GFile(name, "rb") as raw:
                if compression == "GZIP":
                    if tf.io.gfile.stat(name).length == 0:
                        raise ShardError(f"{name}: empty file, not a GZIP TFRecord shard")
                    with gzip.GzipFile(fileobj=raw) as stream:
                        counts[name] = _count_records(stream, name)
                else:
                    counts[name] = _count_records(raw, name)
        except ShardError:
            raise
        except (OSError, EOFError, gzip.BadGzipFile, tf.errors.OpError) as e:
            raise ShardError(f"{name}: not a readable {compression} TFRecord shard ({e})") from e
    return counts


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------


def _hw(img_size) -> tuple[int, int]:
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


def _parallel_kwargs(parallel: bool, deterministic: bool) -> dict:
    """map/interleave arguments: sequential, or AUTOTUNE-parallel with an order policy."""
    if not parallel:
        return {}
    return dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def _explicit_options(ds, parallel: bool, prefetch: bool):
    """Only the parallelism/prefetching asked for: tf.data's default optimisations would
    otherwise parallelise a sequential map and add a prefetch on their own, so a "plain"
    pipeline would not be plain."""
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = bool(parallel)
    options.experimental_optimization.inject_prefetch = bool(prefetch)
    return ds.with_options(options)


def _parse_and_preprocess_fn(img_size):
    height, width = _hw(img_size)

    def parse_and_preprocess(serialized):
        example = tfrecords.parse_example(serialized)
        image = preprocess.preprocess_image(example["image"], height, width)
        return image, example["label_int"]

    return parse_and_preprocess


def make_dataset(
    pattern,
    batch_size: int | None = 32,
    img_size=64,
    training: bool = False,
    shuffle_seed: int | None = None,
    cache: bool | str = False,
    prefetch: bool = True,
    parallel: bool = True,
    interleave: bool = True,
    *,
    shuffle_buffer: int = 1024,
    validate: bool = True,
    compression: str = "GZIP",
):
    """A tf.data.Dataset of ``(images float32 [B, H, W, 3], label_int int64 [B])``.

    pattern: glob of TFRecord shards (e.g. ``.../train-*``), local or ``gs://``, or a list.
    batch_size: None yields single images ``[H, W, 3]`` (the book's unbatched loop).
    img_size: int or (height, width).
    training: shuffle files and records (every epoch); otherwise the order is fixed
        (records of up to 4 files taken in turn with interleave, file after file without).
    shuffle_seed: makes the shuffled order repeatable (run to run); with a seed, or when
        not training, the element order is deterministic even with parallel map/interleave.
    cache: True caches decoded images in memory, a string caches to that file prefix.
    prefetch / parallel / interleave: the book's performance steps, each switchable.
    validate: read each shard once up front (:func:`check_shards`) so a corrupt or
        truncated shard raises an error naming it instead of failing (or silently
        shrinking) in the middle of training. It costs one extra read of the shards (the
        decompression only, no decoding); pass False for very large or remote data.
    """
    files = list_shards(pattern)
    n_records = None
    if validate:
        n_records = sum(check_shards(files, compression).values())
        if n_records == 0:
            raise ValueError(f"The {len(files)} files matching {pattern!r} hold no records")
    deterministic = (shuffle_seed is not None) or not training
    ds = _read_records(files, training, shuffle_seed, interleave, parallel, compression)
    if n_records is not None:  # lets Keras know the steps per epoch
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_records))

    if training and not cache:  # shuffle the small serialized records, before decoding
        ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.map(_parse_and_preprocess_fn(img_size), **_parallel_kwargs(parallel, deterministic))
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
        if training:  # after the cache, so every epoch gets a new order
            ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    if batch_size:
        ds = ds.batch(batch_size)
    if prefetch:
        ds = ds.prefetch(AUTOTUNE)
    return _explicit_options(ds, parallel, prefetch)


def _read_records(files, training, shuffle_seed, interleave, parallel, compression):
    """The serialized records of ``files``: files shuffled when training, then read in turn
    (interleave, up to 4 at a time) or one after the other."""
    deterministic = (shuffle_seed is not None) or not training
    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        file_ds = file_ds.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    if interleave:
        return file_ds.interleave(
            lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
            cycle_length=min(len(files), 4) or 1,
            **_parallel_kwargs(parallel, deterministic),
        )
    return file_ds.flat_map(lambda f: tf.data.TFRecordDataset(f, compression_type=compression))


def make_file_dataset(
    paths: Sequence[str],
    labels: Sequence[int],
    batch_size: int | None = 32,
    img_size=64,
    training: bool = False,
    shuffle_seed: int | None = None,
    cache: bool | str = False,
    prefetch: bool = True,
    parallel: bool = True,
    *,
    shuffle_buffer: int = 1024,
):
    """Like :func:`make_dataset`, over JPEG files (e.g. the paths of ``all_data.csv``).

    paths and labels must have the same length; a missing file raises FileNotFoundError
    naming it (checked up front for local paths; for ``gs://`` when read).
    """
    paths = [str(p) for p in paths]
    labels = [int(l) for l in labels]
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    if not paths:
        raise ValueError("make_file_dataset: no paths given")
    missing = [p for p in paths if "://" not in p and not tf.io.gfile.exists(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image files do not exist, e.g. {missing[0]!r}")
    height, width = _hw(img_size)
    deterministic = (shuffle_seed is not None) or not training

    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
    if training and not cache:
        ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.map(
        lambda p, l: (preprocess.preprocess_image(tf.io.read_file(p), height, width), l),
        **_parallel_kwargs(parallel, deterministic),
    )
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
        if training:
            ds = ds.shuffle(
                min(len(paths), shuffle_buffer), seed=shuffle_seed, reshuffle_each_iteration=True
            )
    if batch_size:
        ds = ds.batch(batch_size)
    if prefetch:
        ds = ds.prefetch(AUTOTUNE)
    return _explicit_options(ds, parallel, prefetch)


# --------------------------------------------------------------------------------------
# The ceiling: decode + resize of bytes already in memory
# --------------------------------------------------------------------------------------


def load_image_bytes(pattern, compression: str = "GZIP") -> tuple[list[bytes], list[int]]:
    """All encoded images and their label_int from the shards, into memory (Python lists)."""
    files = list_shards(pattern)
    check_shards(files, compression)
    ds = tf.data.TFRecordDataset(files, compression_type=compression).map(tfrecords.parse_example)
    images, labels = [], []
    for example in ds:
        images.append(example["image"].numpy())
        labels.append(int(example["label_int"].numpy()))
    return images, labels


def make_bytes_dataset(
    image_bytes: Sequence[bytes],
    labels: Sequence[int] | None = None,
    batch_size: int | None = 32,
    img_size=64,
    parallel: bool = True,
    prefetch: bool = True,
):
    """Decode + resize of in-memory encoded images: no file I/O, no record parsing.

    Draining it measures how fast this machine can decode and resize at best, the ceiling
    for every TFRecord pipeline at the same image size.
    """
    height, width = _hw(img_size)
    labels = list(labels) if labels is not None else [0] * len(image_bytes)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(image_bytes), tf.string), tf.constant(labels, tf.int64))
    )
    ds = ds.map(
        lambda b, l: (preprocess.preprocess_image(b, height, width), l),
        num_parallel_calls=tf.data.AUTOTUNE if parallel else None,
    )
    if batch_size:
        ds = ds.batch(batch_size)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return _explicit_options(ds, parallel, prefetch)


# --------------------------------------------------------------------------------------
# The book's steps, by name (07a)
# --------------------------------------------------------------------------------------

# Read-only loop, one image at a time (the book's first table).
READ_VARIANTS: dict[str, dict] = {
    "plain": dict(parallel=False, interleave=False, prefetch=False, batch_size=None),
    "parallel map": dict(parallel=True, interleave=False, prefetch=False, batch_size=None),
    "interleave": dict(parallel=False, interleave=True, prefetch=False, batch_size=None),
    "interleave + parallel map": dict(
        parallel=True, interleave=True, prefetch=False, batch_size=None
    ),
    # Steps the book only used for training, here for the read loop too:
    "+ batch 32": dict(parallel=True, interleave=True, prefetch=False, batch_size=32),
    "+ batch 32 + prefetch": dict(parallel=True, interleave=True, prefetch=True, batch_size=32),
}

# Training a probe model (the book's second table); batch 1 until "batch 32".
TRAIN_VARIANTS: dict[str, dict] = {
    "plain": dict(parallel=False, interleave=False, prefetch=False, batch_size=1),
    "interleave + parallel": dict(parallel=True, interleave=True, prefetch=False, batch_size=1),
    "batch 32": dict(parallel=True, interleave=True, prefetch=False, batch_size=32),
    "+ cache": dict(parallel=True, interleave=True, prefetch=False, batch_size=32, cache=True),
    "prefetch + cache": dict(
        parallel=True, interleave=True, prefetch=True, batch_size=32, cache=True
    ),
}


# The book's measurements (448x448, 2 shards = 359 images, 2 epochs; CPU s, wall s).
BOOK_READ_SECONDS = {
    "plain": {"cpu_s": 7.53, "wall_s": 7.99},
    "parallel map": {"cpu_s": 8.30, "wall_s": 5.94},
    "interleave": {"cpu_s": 8.60, "wall_s": 5.47},
    "interleave + parallel map": {"cpu_s": 8.44, "wall_s": 5.23},
}
BOOK_TRAIN_SECONDS = {
    "plain": {"cpu_s": 9.91, "wall_s": 9.39},
    "interleave + parallel": {"cpu_s": 10.3, "wall_s": 7.17},
    "batch 32": {"cpu_s": 9.68, "wall_s": 6.37},
    "+ cache": {"cpu_s": 6.16, "wall_s": 4.36},
    "prefetch + cache": {"cpu_s": 5.76, "wall_s": 4.04},
}


def variants_table():
    """The switches of every named variant, as a pandas DataFrame (one row per variant)."""
    rows, index = [], []
    for table, variants in (("read-only loop", READ_VARIANTS), ("training", TRAIN_VARIANTS)):
        for name, options in variants.items():
            full = dict(interleave=True, parallel=True, batch_size=32, cache=False, prefetch=True)
            full.update(options)
            full["batch_size"] = full["batch_size"] or "none"
            rows.append(full)
            index.append((table, name))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["table", "variant"]))


def make_variant(name: str, pattern, img_size=64, table: str = "read", **overrides):
    """The dataset of one named step of the book's tables (``table`` = "read" or "train")."""
    variants = {"read": READ_VARIANTS, "train": TRAIN_VARIANTS}[table]
    if name not in variants:
        raise KeyError(f"Unknown {table} variant {name!r}; choose from {list(variants)}")
    options = dict(variants[name], **overrides)
    return make_dataset(pattern, img_size=img_size, training=False, **options)


def drain(ds) -> int:
    """Iterate a dataset to the end doing nothing; return the number of images seen."""
    n = 0
    for images, _ in ds:
        n += images.shape[0] if images.shape.rank == 4 else 1
    return n


# --------------------------------------------------------------------------------------
# The two workloads the book times (07a)
# --------------------------------------------------------------------------------------


def read_loop(ds, epochs: int = 2, seed: int = 0) -> int:
    """The book's read-only loop: per element, the mean of the channel values above a random
    threshold (so the images must really be read). Returns the number of images seen."""
    rng = np.random.default_rng(seed)
    seen = 0
    for _ in range(epochs):
        thresh = float(rng.uniform(0.3, 0.7))
        total = tf.zeros([3])
        for images, _ in ds:
            axes = list(range(images.shape.rank - 1))
            total += tf.reduce_mean(tf.where(images > thresh, images, 0.0), axis=axes)
            seen += images.shape[0] if images.shape.rank == 4 else 1
    return seen


def make_probe_model(img_size, num_classes: int = 5):
    """The book's probe: Flatten -> Dense softmax, so training costs almost nothing and the
    time measured is the input pipeline's."""
    height, width = _hw(img_size)
    model = keras.Sequential(
        [
            keras.Input(shape=(height, width, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_probe(ds, img_size, epochs: int = 2, num_classes: int = 5, seed: int = 0):
    """Fit a fresh probe model on ``ds`` for ``epochs``; returns the Keras History."""
    keras.utils.set_random_seed(seed)
    model = make_probe_model(img_size, num_classes)
    return model.fit(ds, epochs=epochs, verbose=0, shuffle=False)  # the order is the dataset's
