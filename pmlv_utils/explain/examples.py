"""The images the notebooks explain: one split of a data folder, preprocessed by THE
preprocessing function, with each flower's mask (and background kind) on the model's grid."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from .. import dataset_files, synthetic
from ..preprocess import preprocess_image, read_and_preprocess


def preprocess_mask(mask: np.ndarray, img_size: int | Sequence[int]) -> np.ndarray:
    """An object mask brought to the model's input grid ([H, W] bool), through THE
    preprocessing function (same centre crop and resize as the image), then thresholded."""
    h, w = (img_size, img_size) if np.isscalar(img_size) else img_size
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask: expected [H, W], got shape {list(m.shape)}")
    buf = io.BytesIO()
    Image.fromarray((m > 0).astype(np.uint8) * 255, mode="L").save(buf, format="PNG")
    out = preprocess_image(tf.constant(buf.getvalue()), int(h), int(w)).numpy()
    return out[..., 0] > 0.5


@dataclass
class Examples:
    """Images of one split, ready for a model: float [N,H,W,3], label ids, paths, masks."""

    images: np.ndarray
    label_ids: np.ndarray
    labels: list[str]  # the class names, in dict.txt order
    paths: list[str]
    masks: np.ndarray | None  # [N, H, W] bool: the flower (generated data sets only)
    backgrounds: list[str] | None = None  # background kind per image (generated data sets only)

    @property
    def names(self) -> list[str]:
        return [self.labels[i] for i in self.label_ids]


def load_examples(
    data_dir: str | Path,
    img_size: int,
    split: str = "test",
    per_class: int | None = None,
    with_masks: bool = True,
) -> Examples:
    """Images of ``split`` from a data folder of ``workspace.ensure_dataset`` (in CSV order),
    preprocessed by THE preprocessing function; with their flower masks on the same grid.

    per_class: keep at most this many images of each class (e.g. 1 = one flower per class).
    """
    flower_dir = Path(data_dir) / "flower_photos"
    labels = dataset_files.read_labels(str(flower_dir / "dict.txt"))
    rows = [
        r
        for r in dataset_files.read_all_data(str(flower_dir / "all_data.csv"), report=None)
        if not r.problem and dataset_files.split_for(r.path) == split
    ]
    kept, counts = [], {}
    for r in rows:
        if per_class is None or counts.get(r.label, 0) < per_class:
            counts[r.label] = counts.get(r.label, 0) + 1
            kept.append(r)
    if not kept:
        raise ValueError(f"{flower_dir.name}/all_data.csv: no usable images in split {split!r}")
    kept.sort(key=lambda r: (labels.index(r.label), r.path)) if per_class else None
    images = np.stack([read_and_preprocess(r.path, img_size, img_size).numpy() for r in kept])
    masks = (
        np.stack([preprocess_mask(synthetic.load_mask(r.path), img_size) for r in kept])
        if with_masks
        else None
    )
    return Examples(
        images=images,
        label_ids=np.array([labels.index(r.label) for r in kept]),
        labels=list(labels),
        paths=[r.path for r in kept],
        masks=masks,
        backgrounds=_backgrounds(Path(data_dir), [r.path for r in kept]),
    )


def _backgrounds(data_dir: Path, paths: list[str]) -> list[str] | None:
    """The background kind of each image, from the generator's ``image_info.csv`` (if any)."""
    info = data_dir / "image_info.csv"
    if not info.exists():
        return None
    with open(info, newline="") as f:
        kinds = {row["image"]: row["background"] for row in csv.DictReader(f)}
    keys = ["/".join(Path(p).parts[-3:]) for p in paths]  # flower_photos/<class>/<file>
    return [kinds.get(k, "unknown") for k in keys]
