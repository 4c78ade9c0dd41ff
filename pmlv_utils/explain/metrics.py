"""Measuring and comparing explanations: agreement between methods (rank correlation, top-k
IoU), LIME's stability across seeds, the attribution share on the object vs the background, and
IG's completeness gap against the number of integration steps.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .adapters import ExplainableModel
from .api import explain

LIME_STABILITY_SEEDS = tuple(range(1, 90, 10))  # 1, 11, ..., 81: the blog's 9 seeds


# What each method's map holds: "signed" pixel or superpixel values (evidence for and
# against), or "unsigned" ones (Grad-CAM's ReLU map, XRAI's region ranking, an anchor's 0/1).
MAP_KINDS = {
    "ig": "signed",
    "lime": "signed",
    "kernelshap": "signed",
    "xrai": "unsigned",
    "gradcam": "unsigned",
    "anchors": "unsigned",
}


def rank_correlation(a: np.ndarray, b: np.ndarray, support: np.ndarray | None = None) -> float:
    """Spearman rank correlation between two attribution maps (nan if one is constant).

    support: [H, W] bool, the pixels compared (e.g. ``model.field_of_view.mask()``); default all.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size}")
    if support is not None:
        support = np.broadcast_to(np.asarray(support, bool), a.shape)
        a, b = a[support], b[support]
    a, b = np.ravel(a), np.ravel(b)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def top_k_mask(
    attribution: np.ndarray, k: float = 0.1, support: np.ndarray | None = None
) -> np.ndarray:
    """Exactly the top fraction ``k`` of the pixels (of ``support``, default all) by value.

    Ties are broken deterministically (the earlier pixel in row-major order wins), so every map
    selects the same number of pixels; the map's minimum never counts as 'top', so a flat map
    selects nothing and a map with few non-minimal pixels selects only those."""
    if not 0 < k <= 1:
        raise ValueError(f"k: a fraction in (0, 1], got {k}")
    a = np.asarray(attribution, np.float64)
    inside = np.ones(a.shape, bool) if support is None else np.asarray(support, bool)
    if inside.shape != a.shape:
        raise ValueError(f"support {list(inside.shape)} and map {list(a.shape)} differ in shape")
    values = a[inside]
    n_top = max(1, int(round(k * values.size)))
    order = np.lexsort((np.arange(values.size), -values))[:n_top]  # by value, then position
    chosen = order[values[order] > values.min()]
    picked = np.zeros(values.size, bool)
    picked[chosen] = True
    out = np.zeros(a.shape, bool)
    out[inside] = picked
    return out


def iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def top_k_iou(
    a: np.ndarray, b: np.ndarray, k: float = 0.1, support: np.ndarray | None = None
) -> float:
    """IoU of the top-k pixel sets of two maps (nan when a map is flat: it has no top)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"maps differ in shape: {np.shape(a)} vs {np.shape(b)}")
    mask_a, mask_b = top_k_mask(a, k, support), top_k_mask(b, k, support)
    if not mask_a.any() or not mask_b.any():
        return float("nan")
    return iou(mask_a, mask_b)


def comparable(a: np.ndarray, b: np.ndarray, kind_a: str, kind_b: str):
    """The two maps as they can be compared: signed with signed as they are; when either is
    unsigned (a ReLU map, a region ranking), both as magnitudes |map| (an unsigned map cannot
    tell evidence against from no evidence)."""
    for kind in (kind_a, kind_b):
        if kind not in ("signed", "unsigned"):
            raise ValueError(f"map kind: 'signed' or 'unsigned', got {kind!r}")
    if kind_a == kind_b == "signed":
        return a, b
    return np.abs(a), np.abs(b)


def agreement_table(
    maps_by_method: dict[str, np.ndarray],
    metric: str = "rank_correlation",
    k: float = 0.1,
    support: np.ndarray | None = None,
    kinds: dict[str, str] | None = None,
):
    """Method x method DataFrame: the metric between their maps, averaged over the images.

    support: [H, W] bool, the pixels compared (pass ``model.field_of_view.mask()``: pixels the
    model never sees carry no evidence, only ties). kinds: {name: 'signed' | 'unsigned'}
    (default :data:`MAP_KINDS` for a method's name, else 'signed'); see :func:`comparable`.
    """
    if metric not in ("rank_correlation", "top_k_iou"):
        raise ValueError(f"metric: 'rank_correlation' or 'top_k_iou', got {metric!r}")
    names = list(maps_by_method)
    kinds = {n: (kinds or {}).get(n, MAP_KINDS.get(n, "signed")) for n in names}
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for m1, m2 in itertools.product(names, names):
        values = []
        for a, b in zip(maps_by_method[m1], maps_by_method[m2]):
            a, b = comparable(a, b, kinds[m1], kinds[m2])
            values.append(
                rank_correlation(a, b, support)
                if metric == "rank_correlation"
                else top_k_iou(a, b, k, support)
            )
        table.loc[m1, m2] = np.nanmean(values) if not np.all(np.isnan(values)) else np.nan
    return table


def ranked_pairs(table) -> list[tuple[str, str, float]]:
    """The off-diagonal pairs of an agreement table, most agreeing first (nan last)."""
    names = list(table.index)
    pairs = [(a, b, float(table.loc[a, b])) for i, a in enumerate(names) for b in names[i + 1 :]]
    return sorted(pairs, key=lambda p: (np.isnan(p[2]), -np.nan_to_num(p[2])))


def lime_stability(
    image: np.ndarray,
    target_class: int,
    model: ExplainableModel,
    seeds: Sequence[int] = LIME_STABILITY_SEEDS,
    top_features: int = 5,
    relative_threshold: float = 0.25,
    **lime_options,
) -> dict:
    """LIME on one image with several seeds: the mean pairwise IoU of the top superpixels.

    A seed's top superpixels are its ``top_features`` largest positive weights that reach
    ``relative_threshold`` x its largest weight: when one superpixel decides the prediction,
    the near-zero runners-up are noise and would make a stable explanation look unstable.

    Returns ``{"stability": float, "pairwise_iou": [...], "masks": [H,W] bool per seed,
    "model_calls": int}``. 1.0 = every seed picked the same superpixels.
    """
    if len(seeds) < 2:
        raise ValueError("seeds: need at least two seeds to compare")
    masks, calls = [], 0
    for seed in seeds:
        result = explain(
            np.asarray(image)[None], [target_class], "lime", model, seed=seed, **lime_options
        )
        calls += result.model_calls
        weights = result.attributions[0]
        segments = result.extra["segments"][0]
        per_segment = np.array([weights[segments == s][0] for s in range(segments.max() + 1)])
        top = np.argsort(-per_segment, kind="stable")[:top_features]
        top = top[
            (per_segment[top] > 0) & (per_segment[top] >= relative_threshold * per_segment.max())
        ]
        masks.append(np.isin(segments, top))
    pairwise = [iou(a, b) for a, b in itertools.combinations(masks, 2)]
    return {
        "stability": float(np.mean(pairwise)),
        "pairwise_iou": pairwise,
        "masks": masks,
        "seeds": list(seeds),
        "model_calls": calls,
    }


def attribution_share(attributions: np.ndarray, mask: np.ndarray, field_of_view=None) -> dict:
    """Share of the POSITIVE attribution mass on the object (mask True) vs the background.

    Works on one map [H, W] or a batch [N, H, W] (with masks of the same shape). Returns
    ``{"object": ..., "background": ..., "object_area": ...}`` (floats, or [N] arrays);
    ``object_area`` (the mask's share of the pixels) is what a map unrelated to the object
    would put on it: the chance level. A map with no positive mass gives nan.

    field_of_view: a :class:`~pmlv_utils.explain.fov.FieldOfView` (``model.field_of_view``):
    count only the pixels the model sees, for the shares and for the chance level.
    """
    attr = np.asarray(attributions, np.float64)
    m = np.asarray(mask).astype(bool)
    if attr.shape != m.shape:
        raise ValueError(
            f"attributions {list(attr.shape)} and mask {list(m.shape)} differ in shape"
        )
    single = attr.ndim == 2
    if single:
        attr, m = attr[None], m[None]
    if field_of_view is not None:
        attr, m = field_of_view.crop(attr), field_of_view.crop(m)
    pos = np.clip(attr, 0, None).reshape(len(attr), -1)
    mflat = m.reshape(len(m), -1)
    total = pos.sum(axis=1)
    on_object = (pos * mflat).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        obj = np.where(total > 0, on_object / total, np.nan)
    out = {"object": obj, "background": 1.0 - obj, "object_area": mflat.mean(axis=1)}
    return {k: float(v[0]) for k, v in out.items()} if single else out


def pooled_background_share(attributions: np.ndarray, masks: np.ndarray, field_of_view=None):
    """The share of ALL the positive attribution mass of a batch [N, H, W] that falls on the
    background (masks [N, H, W] False), inside ``field_of_view``: images where the model finds
    much evidence weigh more than images where it finds little (a shortcut class's evidence is
    strong where the shortcut is). nan when the maps have no positive mass."""
    attr = np.asarray(attributions, np.float64)
    m = np.asarray(masks).astype(bool)
    if attr.shape != m.shape or attr.ndim != 3:
        raise ValueError(
            f"attributions {list(attr.shape)} and masks {list(m.shape)}: expected [N, H, W] each"
        )
    if field_of_view is not None:
        attr, m = field_of_view.crop(attr), field_of_view.crop(m)
    pos = np.clip(attr, 0, None)
    total = pos.sum()
    return float((pos * ~m).sum() / total) if total > 0 else float("nan")


def gap_vs_steps(
    images: np.ndarray,
    target_classes,
    model: ExplainableModel,
    steps_list: Sequence[int] = (4, 8, 16, 32, 64, 128, 256),
    integrations: Sequence[str] = ("riemann", "riemann_trapezoid", "gausslegendre"),
    baseline="random",
    seed: int = 42,
):
    """IG's completeness gap for every (integration rule, step count): a DataFrame with one
    row per image and setting (columns integration, steps, image, gap, seconds, model_calls)."""
    rows = []
    for integration in integrations:
        for steps in steps_list:
            r = explain(
                images,
                target_classes,
                "ig",
                model,
                steps=int(steps),
                baseline=baseline,
                integration=integration,
                seed=seed,
            )
            for i, gap in enumerate(r.approx_error):
                rows.append(
                    {
                        "integration": integration,
                        "steps": int(steps),
                        "image": i,
                        "gap": float(gap),
                        "seconds": r.seconds / len(images),
                        "model_calls": r.model_calls / len(images),
                    }
                )
    return pd.DataFrame(rows)


def steps_for_gap(table, target: float = 0.05, statistic: str = "max") -> dict:
    """{integration: the smallest step count from which the gap's ``statistic`` over the images
    ('max' or 'median') stays <= target at every larger step count tried} (None if never)."""
    if statistic not in ("max", "median"):
        raise ValueError(f"statistic: 'max' or 'median', got {statistic!r}")
    chosen = {}
    for integration, part in table.groupby("integration", sort=False):
        per_step = part.groupby("steps")["gap"].agg(statistic).sort_index()
        ok = per_step <= target
        chosen[integration] = None
        for steps in per_step.index:
            if ok.loc[steps:].all():
                chosen[integration] = int(steps)
                break
    return chosen
