"""A ground-truth benchmark for explainers: planted cues, the model's true reliance on them, and
how well each method's attribution tracks it (notebook 10e, "A benchmark with known answers").

The generator plants a cue (the corner stamp or the sky, :mod:`pmlv_utils.synthetic.cues`) at a
known strength and can re-render the same flower without it, so the model's *true reliance* on
the cue in one image is a difference of two predictions::

    reliance = P(class | cue on) - P(class | cue off)        (same flower, same camera)

An explainer is good at this cue when the share of its positive attribution on the cue's region
(in the model's field of view) is high where the reliance is high and low where it is low: its
score is the Spearman rank correlation between share and reliance over images x strengths.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image
from scipy.stats import spearmanr

from .. import dataset_files, synthetic
from ..preprocess import preprocess_image
from .examples import preprocess_mask
from .metrics import attribution_share


@dataclass
class CueSet:
    """Counterfactual pairs of one cue, on the model's input grid: ``on`` [N*S, H, W, 3] (each
    image at each strength), ``off`` [N, H, W, 3], ``masks`` [N*S, H, W] (the cue's region),
    ``item`` [N*S] (the row of ``off`` each ``on`` image belongs to), ``strength`` [N*S]."""

    cue: str
    on: np.ndarray
    off: np.ndarray
    masks: np.ndarray
    item: np.ndarray
    strength: np.ndarray
    names: list[str]  # "<class>_<index>" of each of the N images


def split_items(
    data_dir: str | Path, split: str = "test", per_class: int = 4
) -> list[tuple[str, int]]:
    """(listed class, index) of the first ``per_class`` images of each class in ``split`` of a
    generated data folder (the images :func:`cue_set` re-renders)."""
    flower_dir = Path(data_dir) / "flower_photos"
    rows = dataset_files.read_all_data(str(flower_dir / "all_data.csv"), report=None)
    items, counts = [], {}
    for r in rows:
        if r.problem or dataset_files.split_for(r.path) != split:
            continue
        if counts.get(r.label, 0) < per_class:
            counts[r.label] = counts.get(r.label, 0) + 1
            items.append((r.label, int(Path(r.path).stem.rsplit("_", 1)[1])))
    if not items:
        raise ValueError(f"{flower_dir}: no images in split {split!r}")
    return items


def to_model_input(rgb: np.ndarray, quality: int, img_size: int) -> np.ndarray:
    """A rendered image as the model sees a data-set file: JPEG at the data set's quality,
    then THE preprocessing function (centre crop, resize) -> float [H, W, 3] in [0, 1]."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=int(quality))
    return preprocess_image(tf.constant(buf.getvalue()), img_size, img_size).numpy()


def cue_set(
    items: Sequence[tuple[str, int]],
    cue: str,
    strengths: Sequence[float],
    img_size: int,
    seed: int,
    difficulty: str = "hard",
) -> CueSet:
    """Each of ``items`` rendered without ``cue`` and with it at each of ``strengths``
    (:func:`pmlv_utils.synthetic.counterfactual`), on the model's grid."""
    on, off, masks, item, strength = [], [], [], [], []
    for i, (label, index) in enumerate(items):
        pair = synthetic.counterfactual(seed, label, index, cue, strengths, difficulty)
        off.append(to_model_input(pair["off"], pair["jpeg_quality"], img_size))
        for s, rgb, mask in zip(strengths, pair["on"], pair["cue_masks"]):
            on.append(to_model_input(rgb, pair["jpeg_quality"], img_size))
            masks.append(preprocess_mask(mask, img_size))
            item.append(i)
            strength.append(float(s))
    return CueSet(
        cue=cue,
        on=np.stack(on),
        off=np.stack(off),
        masks=np.stack(masks),
        item=np.array(item),
        strength=np.array(strength),
        names=[f"{label}_{index:04d}" for label, index in items],
    )


def true_reliance(predict, cues: CueSet, target: int) -> np.ndarray:
    """[N*S] P(target | cue on) - P(target | cue off) for each image and strength.
    ``predict``: images -> probabilities (e.g. ``model.predict``)."""
    p_on = np.asarray(predict(cues.on))[:, target]
    p_off = np.asarray(predict(cues.off))[:, target]
    return p_on - p_off[cues.item]


def cue_share(attributions: np.ndarray, cues: CueSet, field_of_view=None) -> np.ndarray:
    """[N*S] the share of each map's positive attribution on the cue's region (inside the
    field of view); nan for a map with no positive mass."""
    return attribution_share(attributions, cues.masks, field_of_view)["object"]


def reliance_score(share, reliance) -> float:
    """Spearman rank correlation of attribution share and true reliance (nan when either is
    constant or fewer than three pairs are finite): 1 = the explainer ranks the images exactly
    as the model relies on the cue."""
    share, reliance = np.asarray(share, float), np.asarray(reliance, float)
    if share.shape != reliance.shape:
        raise ValueError(f"share {share.shape} and reliance {reliance.shape} differ in shape")
    ok = np.isfinite(share) & np.isfinite(reliance)
    if ok.sum() < 3 or np.ptp(share[ok]) == 0 or np.ptp(reliance[ok]) == 0:
        return float("nan")
    return float(spearmanr(share[ok], reliance[ok]).statistic)


def score_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Method x cue table of :func:`reliance_score` from rows with the columns ``method``,
    ``cue``, ``share`` and ``reliance`` (one row per image x strength)."""
    for column in ("method", "cue", "share", "reliance"):
        if column not in rows:
            raise ValueError(f"rows: missing the column {column!r}")
    scores = rows.groupby(["method", "cue"], sort=False).apply(
        lambda g: reliance_score(g["share"], g["reliance"]), include_groups=False
    )
    return scores.unstack("cue")
