"""Is an explanation faithful to the model? Deletion and insertion curves, and the blog's
experiment of removing the evidence *against* a class.

Deletion (Petsiuk et al., 2018, "RISE"): switch off the most-attributed pixels first (replace
them by a strong blur of the image, by default: black pixels scattered over an image push it off
the data the model knows, so that even a random order kills the prediction at once), a fraction
at a time, and re-predict; a faithful map makes the target probability fall fast (a LOW area
under the curve). Insertion: start from a blurred image and put the most-attributed pixels back
first; a faithful map makes the probability rise fast (a HIGH area). Pixels are ranked inside the
model's field of view only (outside it nothing changes the prediction), ties broken by position,
and a random ranking gives the chance level to compare against.

The blog's experiment: switch off the superpixels a LIME (or KernelSHAP) explanation marks as
evidence against the class, re-predict: if the explanation is right, the probability rises.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from .adapters import ExplainableModel
from .fov import FieldOfView
from .perturbation import hidden_image

FILLS = ("black", "grey", "blur")  # what a removed pixel becomes
DEFAULT_STEPS = 16


def fill_image(image: np.ndarray, fill: str) -> np.ndarray:
    """The image every pixel is replaced from: black, mid-grey, or a strong blur of itself."""
    if fill == "black":
        return np.zeros_like(image, np.float32)
    if fill == "grey":
        return np.full(image.shape, 0.5, np.float32)
    if fill == "blur":
        sigma = max(image.shape[:2]) / 8
        return gaussian_filter(np.asarray(image, np.float32), sigma=(sigma, sigma, 0))
    raise ValueError(f"fill: unknown {fill!r}; choose one of {FILLS}")


def pixel_order(attribution: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """Flat indices of the field-of-view pixels, most attributed first (ties: row-major)."""
    inside = np.flatnonzero(fov.mask().ravel())
    values = np.asarray(attribution, np.float64).ravel()[inside]
    return inside[np.lexsort((np.arange(values.size), -values))]


def _curve(image, target, order, source, start, model, steps) -> np.ndarray:
    """P(target) as the first 0, 1/steps, ..., 1 of ``order`` go from ``start`` to ``source``."""
    h, w = image.shape[:2]
    counts = np.round(np.linspace(0, len(order), steps + 1)).astype(int)
    batch = np.repeat(start.reshape(1, h * w, 3), steps + 1, axis=0)
    for i, n in enumerate(counts):
        batch[i, order[:n]] = source.reshape(h * w, 3)[order[:n]]
    return model.predict(batch.reshape(steps + 1, h, w, 3))[:, int(target)]


def deletion_insertion(
    images: np.ndarray,
    targets,
    maps: np.ndarray,
    model: ExplainableModel,
    steps: int = DEFAULT_STEPS,
    deletion_fill: str = "blur",
    insertion_fill: str = "blur",
) -> dict:
    """Deletion and insertion curves of each image's map, and their areas.

    Returns ``{"fractions": [steps+1], "deletion": [N, steps+1], "insertion": [N, steps+1],
    "deletion_auc": [N], "insertion_auc": [N]}`` (probabilities of each image's target class
    against the fraction of the field of view removed / inserted; areas by the trapezoid rule).
    """
    images = np.asarray(images, np.float32)
    maps = np.asarray(maps)
    if maps.shape != images.shape[:3]:
        raise ValueError(f"maps {list(maps.shape)}: expected one [H, W] map per image")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps: a positive int, got {steps!r}")
    targets = np.broadcast_to(np.asarray(targets, int), (len(images),))
    fov = model.field_of_view
    deletion, insertion = [], []
    for x, t, m in zip(images, targets, maps):
        order = pixel_order(m, fov)
        deletion.append(_curve(x, t, order, fill_image(x, deletion_fill), x.copy(), model, steps))
        insertion.append(_curve(x, t, order, x, fill_image(x, insertion_fill), model, steps))
    fractions = np.linspace(0.0, 1.0, steps + 1)
    deletion, insertion = np.array(deletion), np.array(insertion)
    return {
        "fractions": fractions,
        "deletion": deletion,
        "insertion": insertion,
        "deletion_auc": np.trapezoid(deletion, fractions, axis=1),
        "insertion_auc": np.trapezoid(insertion, fractions, axis=1),
    }


def faithfulness_table(
    images: np.ndarray,
    targets,
    maps_by_method: dict[str, np.ndarray],
    model: ExplainableModel,
    steps: int = DEFAULT_STEPS,
    random_seed: int | None = 0,
    **fills,
):
    """One row per (method, image): deletion AUC (lower = more faithful), insertion AUC (higher
    = more faithful), and insertion - deletion. With ``random_seed`` a "random" method (a
    random pixel ranking, seeded) gives the chance level. Returns (table, curves by method)."""
    maps_by_method = dict(maps_by_method)
    if random_seed is not None:
        rng = np.random.default_rng(random_seed)
        maps_by_method["random"] = rng.uniform(size=np.shape(images)[:3])
    rows, curves = [], {}
    for method, maps in maps_by_method.items():
        r = deletion_insertion(images, targets, maps, model, steps, **fills)
        curves[method] = r
        for i, (d, ins) in enumerate(zip(r["deletion_auc"], r["insertion_auc"])):
            rows.append(
                {
                    "method": method,
                    "image": i,
                    "deletion_auc": float(d),
                    "insertion_auc": float(ins),
                    "insertion - deletion": float(ins - d),
                }
            )
    return pd.DataFrame(rows), curves


def remove_negative_superpixels(
    images: np.ndarray,
    targets,
    maps: np.ndarray,
    segments: list[np.ndarray],
    model: ExplainableModel,
    hide: str = "mean",
):
    """The blog's experiment: switch off the superpixels with a negative weight in each map
    (LIME's or KernelSHAP's, with their ``extra["segments"]``), re-predict the target class.

    One row per image: the probability before, after removing the negative superpixels, and
    (for contrast) after removing as many pixels of the most positive ones."""
    images = np.asarray(images, np.float32)
    targets = np.broadcast_to(np.asarray(targets, int), (len(images),))
    rows = []
    for i, (x, t, m, seg) in enumerate(zip(images, targets, maps, segments)):
        weights = np.array([m[seg == s].mean() for s in range(int(seg.max()) + 1)])
        off = hidden_image(x, seg, hide)
        negative = np.isin(seg, np.flatnonzero(weights < 0))
        by_weight = np.argsort(-weights, kind="stable")
        n_pos = int(np.cumsum(np.bincount(seg.ravel())[by_weight]).searchsorted(negative.sum()))
        positive = np.isin(seg, by_weight[: n_pos + 1]) if negative.any() else negative
        batch = np.stack(
            [x, np.where(negative[..., None], off, x), np.where(positive[..., None], off, x)]
        )
        p = model.predict(batch)[:, int(t)]
        rows.append(
            {
                "image": i,
                "negative superpixels": int((weights < 0).sum()),
                "share of pixels": float(negative.mean()),
                "P(target)": float(p[0]),
                "negative removed": float(p[1]),
                "as many top-positive removed": float(p[2]),
                "change": float(p[1] - p[0]),
            }
        )
    return pd.DataFrame(rows)
