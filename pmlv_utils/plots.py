"""Plot helpers shared by the notebooks (matplotlib; every function returns its Figure)."""

from __future__ import annotations

import io
import math
import os
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from PIL import Image


def load_image_array(image) -> np.ndarray:
    """An image to show: a path (local or gs://), encoded bytes, or an array -> array.

    uint8 arrays and float arrays in [0, 1] are returned as they are (grayscale [H, W] too).
    """
    if isinstance(image, (bytes, bytearray)):
        return np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    if isinstance(image, (str, os.PathLike)):
        path = str(image)
        if "://" in path:
            with tf.io.gfile.GFile(path, "rb") as f:
                return np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB"))
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


def show_image_grid(
    images: Sequence,
    titles: Sequence[str] | None = None,
    ncols: int = 5,
    size: float = 2.0,
    suptitle: str | None = None,
):
    """Show images in a grid; ``images`` are paths, encoded bytes or arrays (mixed is fine).

    ``size``: inches per cell. Returns the matplotlib Figure.
    """
    images = list(images)
    if not images:
        raise ValueError("show_image_grid: no images to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_image_grid: {len(images)} images but {len(titles)} titles")
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        arr = load_image_array(images[i])
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    confusion, labels: Sequence[str], title: str | None = None, normalize: bool = False, ax=None
):
    """A confusion matrix (rows = true label, columns = predicted) with counts in the cells."""
    cm = np.asarray(confusion, dtype=float)
    if cm.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {len(labels)} labels")
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(labels), 0.8 + 0.8 * len(labels)))
    else:
        fig = ax.figure
    ax.imshow(shown, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = shown.max() if shown.size else 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                color="white" if top and shown[i, j] > 0.6 * top else "black",
                fontsize=9,
            )
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
