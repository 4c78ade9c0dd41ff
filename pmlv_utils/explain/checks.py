"""Input checks shared by every method: the images, the target classes, IG's baseline image."""

from __future__ import annotations

import numpy as np

from .adapters import ExplainableModel

IG_BASELINES = ("black", "white", "random")
_VALUE_TOLERANCE = 1e-3  # pixel values may stray this far outside [0, 1]


def check_images(images, model: ExplainableModel) -> np.ndarray:
    """float32 [N, H, W, 3] in [0, 1] at the model's size, or a ValueError saying what is wrong."""
    arr = np.asarray(images)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"images: expected a float array [N, H, W, 3] in [0, 1], got dtype {arr.dtype}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"images: expected float pixels in [0, 1], got {arr.dtype} "
            "(divide 8-bit images by 255, or use the model's xai_preprocess)"
        )
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(
            f"images: expected shape [N, H, W, 3], got {list(arr.shape)}"
            + (" (a single image? pass images[None])" if arr.ndim == 3 else "")
        )
    if len(arr) == 0:
        raise ValueError("images: the batch is empty")
    if tuple(arr.shape[1:3]) != model.img_size:
        raise ValueError(
            f"images: {arr.shape[1]}x{arr.shape[2]} pixels, but {model.name} takes "
            f"{model.img_size[0]}x{model.img_size[1]}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("images: contain NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -_VALUE_TOLERANCE or hi > 1 + _VALUE_TOLERANCE:
        raise ValueError(f"images: pixel values should be in [0, 1], found [{lo:.3g}, {hi:.3g}]")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def check_targets(
    target_classes, n: int, model: ExplainableModel, images: np.ndarray
) -> np.ndarray:
    """int [N] target classes; None means each image's predicted class."""
    if target_classes is None:
        return model.predict(images).argmax(axis=1).astype(np.int64)
    arr = np.asarray(target_classes)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"target_classes: expected one class per image ({n}), got shape {list(arr.shape)}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"target_classes: expected class indices (int), got {arr.dtype}")
    k = model.num_classes
    bad = arr[(arr < 0) | (arr >= k)]
    if len(bad):
        raise ValueError(
            f"target_classes: {bad.tolist()} out of range: the model has {k} classes (0..{k - 1})"
        )
    return arr.astype(np.int64)


def make_baseline(baseline, shape: tuple[int, ...], seed: int = 42) -> np.ndarray:
    """A baseline image: 'black' (zeros), 'white' (ones), 'random' (uniform, seeded) or an array."""
    if isinstance(baseline, str):
        if baseline == "black":
            return np.zeros(shape, np.float32)
        if baseline == "white":
            return np.ones(shape, np.float32)
        if baseline == "random":
            return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
        raise ValueError(
            f"baseline: unknown {baseline!r}; use one of {IG_BASELINES} or an image array"
        )
    arr = np.asarray(baseline, dtype=np.float32)
    if arr.shape != tuple(shape):
        raise ValueError(
            f"baseline: shape {list(arr.shape)} does not match the image shape {list(shape)}"
        )
    return arr
