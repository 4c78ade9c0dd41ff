"""The model's field of view: the window of its input image it actually looks at.

A model whose first layer crops the centre of its input (trainer versions up to 4 crop the
central ``crop_ratio`` of a 64x64 image to 48x48) never sees the frame around that window: its
gradients there are exactly zero, perturbing it changes nothing, and a map, a mask or a chance
level computed over the whole image mixes in pixels the model cannot use. Every explanation
measure takes a :class:`FieldOfView` so that it works on the window only.

Where it comes from, first match wins:

1. ``model_info.json``'s ``field_of_view`` ([top, left, height, width], written by
   :func:`pmlv_utils.export.export_saved_model` from the model's layers);
2. a Keras model's own layers (:func:`pmlv_utils.export.inference_window`);
3. for an older export without either, a gradient probe of the ``xai_model`` signature
   (:func:`probe_field_of_view`: the bounding box of the pixels whose gradient is not zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class FieldOfView:
    """The window ``[top:top+height, left:left+width]`` of an ``image_size`` input."""

    top: int
    left: int
    height: int
    width: int
    image_size: tuple[int, int]
    source: str = "whole image"

    def __post_init__(self):
        h, w = self.image_size
        if min(self.height, self.width) < 1 or self.top < 0 or self.left < 0:
            raise ValueError(f"field of view: bad window {self.window}")
        if self.top + self.height > h or self.left + self.width > w:
            raise ValueError(f"field of view: window {self.window} outside a {h}x{w} image")

    @classmethod
    def whole(cls, image_size: Sequence[int], source: str = "whole image") -> "FieldOfView":
        h, w = (int(s) for s in image_size)
        return cls(0, 0, h, w, (h, w), source)

    @classmethod
    def from_window(
        cls, window: Sequence[int], image_size: Sequence[int], source: str = "model_info"
    ) -> "FieldOfView":
        """From ``[top, left, height, width]`` (the ``model_info.json`` form)."""
        if len(window) != 4:
            raise ValueError(f"field_of_view: expected [top, left, height, width], got {window}")
        top, left, height, width = (int(v) for v in window)
        return cls(top, left, height, width, tuple(int(s) for s in image_size), source)

    @property
    def window(self) -> list[int]:
        return [self.top, self.left, self.height, self.width]

    @property
    def is_whole(self) -> bool:
        return (self.height, self.width) == tuple(self.image_size)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def mask(self) -> np.ndarray:
        """[H, W] bool: True inside the window."""
        out = np.zeros(self.image_size, bool)
        out[self.slices] = True
        return out

    def crop(self, maps: np.ndarray) -> np.ndarray:
        """The window of maps [..., H, W]."""
        maps = np.asarray(maps)
        if tuple(maps.shape[-2:]) != tuple(self.image_size):
            raise ValueError(
                f"maps of shape {list(maps.shape)}: expected [..., {self.image_size[0]}, "
                f"{self.image_size[1]}]"
            )
        rows, cols = self.slices
        return maps[..., rows, cols]

    def place(self, window_map: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """A map [H, W] of the image holding ``window_map`` [height, width] in the window."""
        window_map = np.asarray(window_map)
        if window_map.shape != (self.height, self.width):
            raise ValueError(
                f"window map {list(window_map.shape)}: expected [{self.height}, {self.width}]"
            )
        out = np.full(self.image_size, fill, window_map.dtype)
        out[self.slices] = window_map
        return out

    def describe(self) -> str:
        if self.is_whole:
            return f"the whole {self.image_size[0]}x{self.image_size[1]} image ({self.source})"
        return (
            f"rows {self.top}..{self.top + self.height - 1}, columns {self.left}.."
            f"{self.left + self.width - 1}: a {self.height}x{self.width} window of the "
            f"{self.image_size[0]}x{self.image_size[1]} image ({self.source})"
        )


def from_model_info(info: dict, image_size: Sequence[int]) -> FieldOfView | None:
    """The field of view ``model_info.json`` records (``field_of_view``), else None."""
    window = info.get("field_of_view")
    if window is None:
        return None
    return FieldOfView.from_window(window, image_size, "model_info.json")


def probe_field_of_view(
    target_gradient_fn: Callable,
    image_size: Sequence[int],
    num_classes: int,
    seed: int = 0,
    n_images: int = 16,
) -> FieldOfView:
    """The bounding box of the pixels where the model's gradient is not exactly zero, over a
    few random images and every class (a cropped frame has gradient 0 everywhere)."""
    h, w = (int(s) for s in image_size)
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(int(n_images), h, w, 3)).astype(np.float32)
    seen = np.zeros((h, w), bool)
    for c in range(int(num_classes)):
        _, grads = target_gradient_fn(images, np.full(len(images), c, np.int32))
        seen |= np.any(np.asarray(grads) != 0, axis=(0, 3))
    if not seen.any():
        return FieldOfView.whole((h, w), "gradient probe: no gradient anywhere")
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    return FieldOfView(
        int(rows[0]),
        int(cols[0]),
        int(rows[-1] - rows[0] + 1),
        int(cols[-1] - cols[0] + 1),
        (h, w),
        "gradient probe",
    )
