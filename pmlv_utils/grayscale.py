"""Five ways to turn RGB images into (sRGB-gamma) grayscale: the book's 07b vectorisation lesson.

Taught in 07_training/07b_gpumax.ipynb ("Five ways to write it"), which writes the five and checks
them against these.

All five compute the same thing -- luminance ``0.2126 R + 0.7152 G + 0.0722 B``, then the sRGB
transfer curve -- and differ only in how much of the work runs as Python, one value at a time:

1. ``iterate``      Python loops over images, rows and columns;
2. ``py_function``  the same Python function inside a tf.data map through ``tf.py_function``;
3. ``slicing``      TensorFlow ops on whole channel slices, one image at a time;
4. ``matmul``       one matrix product per image instead of three slices;
5. ``batched``      a Keras layer doing the matmul on the whole batch at once.

Every variant takes float32 images ``[N, H, W, 3]`` in [0, 1] and returns ``[N, H, W]``.
Two bugs of the book's layer are fixed: the input shape comes from the data (the book declared
336x600 for 338x600 images) and ``super().__init__(**kwargs)`` (the book passed ``kwargs``
as one positional argument).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from . import dataset_files, preprocess, timing

LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)
SRGB_THRESHOLD = 0.0031308

# The book's wall seconds for 20 images of 338x600, each including reading the JPEGs from GCS.
BOOK_SECONDS = {
    "iterate": 41.1,
    "py_function": 41.1,
    "slicing": 3.07,
    "matmul": 2.29,
    "batched layer": 2.13,
}

__all__ = [
    "LUMA_WEIGHTS",
    "to_grayscale_loop",
    "to_grayscale_slicing",
    "to_grayscale_matmul",
    "Grayscale",
    "make_grayscale_layer",
    "make_grayscale_model",
    "VARIANTS",
    "load_images",
    "pick_paths",
    "time_variants",
    "BOOK_SECONDS",
]


def _gamma(c_linear: float) -> float:
    if c_linear > SRGB_THRESHOLD:
        return 1.055 * pow(c_linear, 1 / 2.4) - 0.055
    return 12.92 * c_linear


def to_grayscale_loop(img: np.ndarray) -> np.ndarray:
    """One image ``[H, W, 3]``, one pixel at a time in Python (the slow baseline)."""
    img = np.asarray(img)
    rows, cols, _ = img.shape
    result = np.zeros([rows, cols], dtype=np.float32)
    wr, wg, wb = LUMA_WEIGHTS
    for row in range(rows):
        for col in range(cols):
            red, green, blue = img[row, col]
            result[row, col] = _gamma(wr * red + wg * green + wb * blue)
    return result


def _gamma_tf(c_linear):
    return tf.where(
        c_linear > SRGB_THRESHOLD, 1.055 * tf.pow(c_linear, 1 / 2.4) - 0.055, 12.92 * c_linear
    )


def to_grayscale_slicing(img):
    """One image ``[H, W, 3]`` with TensorFlow ops on the three channel slices."""
    wr, wg, wb = LUMA_WEIGHTS
    c_linear = wr * img[:, :, 0] + wg * img[:, :, 1] + wb * img[:, :, 2]
    return _gamma_tf(c_linear)


def to_grayscale_matmul(img):
    """One image (or a batch) ``[..., 3]``: luminance as a matrix product with a 3x1 matrix."""
    weights = tf.constant([[w] for w in LUMA_WEIGHTS], dtype=tf.float32)  # [3, 1]
    c_linear = tf.squeeze(
        tf.matmul(img, weights), axis=-1
    )  # [..., H, W, 3] x [3, 1] -> [..., H, W]
    return _gamma_tf(c_linear)


class Grayscale(keras.layers.Layer):
    """A Keras layer: batch ``[N, H, W, 3]`` -> ``[N, H, W]`` (matmul on the whole batch)."""

    def __init__(self, **layer_kwargs):
        super().__init__(**layer_kwargs)  # the book passed `kwargs` positionally
        self.weights_3x1 = np.array([[w] for w in LUMA_WEIGHTS], dtype=np.float32)

    def call(self, images):
        c_linear = ops.squeeze(ops.matmul(images, self.weights_3x1), axis=-1)
        return ops.where(
            c_linear > SRGB_THRESHOLD,
            1.055 * ops.power(c_linear, 1 / 2.4) - 0.055,
            12.92 * c_linear,
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])


def make_grayscale_layer(**kwargs) -> Grayscale:
    """A :class:`Grayscale` layer (the notebook's name for building one)."""
    return Grayscale(**kwargs)


def make_grayscale_model(image_shape: Sequence[int]):
    """A one-layer Keras model; ``image_shape`` = (H, W, 3) taken from the data, not typed in."""
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(f"image_shape must be (height, width, 3), got {image_shape}")
    return keras.Sequential(
        [keras.Input(shape=image_shape), make_grayscale_layer(name="grayscale")]
    )


# ---- the five variants over a batch [N, H, W, 3] -> [N, H, W] -------------------------------


def grayscale_iterate(images: np.ndarray) -> np.ndarray:
    return np.stack([to_grayscale_loop(img) for img in np.asarray(images)])


def grayscale_py_function(images: np.ndarray) -> np.ndarray:
    def loop_on_tensor(img):
        return to_grayscale_loop(img.numpy())

    ds = tf.data.Dataset.from_tensor_slices(images).map(
        lambda img: tf.py_function(loop_on_tensor, [img], tf.float32)
    )
    return np.stack([g.numpy() for g in ds])


def grayscale_slicing(images: np.ndarray) -> np.ndarray:
    return np.stack([to_grayscale_slicing(img).numpy() for img in np.asarray(images)])


def grayscale_matmul(images: np.ndarray) -> np.ndarray:
    return np.stack([to_grayscale_matmul(img).numpy() for img in np.asarray(images)])


def grayscale_batched(images: np.ndarray, model=None) -> np.ndarray:
    """The whole batch through the Keras layer in one call (``predict_on_batch``).

    Pass a ``model`` from :func:`make_grayscale_model` to leave building it out of a timing.
    """
    images = np.asarray(images, dtype=np.float32)
    model = model if model is not None else make_grayscale_model(images.shape[1:])
    return np.asarray(model.predict_on_batch(images))


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iterate": grayscale_iterate,
    "py_function": grayscale_py_function,
    "slicing": grayscale_slicing,
    "matmul": grayscale_matmul,
    "batched layer": grayscale_batched,
}


def pick_paths(all_data_csv: str, n: int) -> list[str]:
    """``n`` image paths from ``all_data.csv``, taking the classes in turn (deterministic)."""
    by_label = defaultdict(list)
    for row in dataset_files.read_all_data(str(all_data_csv), report=None):
        if not row.problem:
            by_label[row.label].append(row.path)
    picked, i = [], 0
    longest = max((len(v) for v in by_label.values()), default=0)
    while len(picked) < n and i < longest:
        for label in sorted(by_label):
            if i < len(by_label[label]) and len(picked) < n:
                picked.append(by_label[label][i])
        i += 1
    if len(picked) < n:
        raise ValueError(f"{all_data_csv} has only {len(picked)} usable images, {n} asked for")
    return picked


def time_variants(
    images: np.ndarray, repeats: int = 3, loop_repeats: int = 1, progress: bool = True
) -> dict[str, dict]:
    """Time the five variants on ``images``: ``{name: timing.time_it result}``.

    The Python-loop variants run ``loop_repeats`` times (they are slow); the TensorFlow ones
    get one untimed warm-up run first (tracing, kernel start-up) and then ``repeats``. The
    batched layer's model is built once, outside the timing. Each result's ``value`` is the
    variant's output, to check that all agree.
    """
    model = make_grayscale_model(np.asarray(images).shape[1:])
    results = {}
    for name, fn in VARIANTS.items():
        slow = name in ("iterate", "py_function")
        run = (
            (lambda: grayscale_batched(images, model))
            if name == "batched layer"
            else (lambda fn=fn: fn(images))
        )
        results[name] = timing.time_it(
            run,
            loop_repeats if slow else repeats,
            warmup=0 if slow else 1,
            label=name,
            progress=progress,
        )
    return results


def load_images(paths: Sequence[str], height: int, width: int) -> np.ndarray:
    """Read JPEG files into float32 ``[N, height, width, 3]`` with the course's preprocessing."""
    if not paths:
        raise ValueError("load_images: no paths given")
    images = []
    for p in paths:
        try:
            data = tf.io.read_file(str(p))
        except tf.errors.NotFoundError as e:
            raise FileNotFoundError(f"image file not found: {p}") from e
        images.append(preprocess.preprocess_image(data, height, width).numpy())
    return np.stack(images).astype(np.float32)
