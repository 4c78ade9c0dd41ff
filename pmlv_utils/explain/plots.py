"""Plots of explanations: overlays, the book's image/attribution grid, method comparisons.

Every function returns the matplotlib Figure (notebooks display it; tests can close it).
Maps are [H, W] float arrays as returned by :func:`pmlv_utils.explain.explain`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

DIVERGING = "PiYG"  # green = supports the class, pink = speaks against it
POSITIVE = "viridis"


def symmetric_limit(maps, percentile: float = 99.5) -> float:
    """A colour limit for signed maps: the percentile of |values| (never 0)."""
    a = np.abs(np.asarray(maps, np.float64))
    limit = float(np.percentile(a, percentile)) if a.size else 0.0
    return limit if limit > 0 else (float(a.max()) or 1.0)


def _positive_scaled(attribution: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    pos = np.clip(np.asarray(attribution, np.float64), 0, None)
    top = np.percentile(pos[pos > 0], percentile) if np.any(pos > 0) else 1.0
    return np.clip(pos / (top or 1.0), 0, 1)


def overlay(
    image: np.ndarray, attribution: np.ndarray, sign: str = "positive", alpha: float = 0.6
) -> np.ndarray:
    """The image dimmed, with the positive (green) or negative (red) part of a map on top."""
    if sign not in ("positive", "negative"):
        raise ValueError(f"sign: 'positive' or 'negative', got {sign!r}")
    a = np.asarray(attribution, np.float64)
    strength = _positive_scaled(a if sign == "positive" else -a)[..., None]
    colour = np.array([0.1, 0.9, 0.2]) if sign == "positive" else np.array([0.95, 0.1, 0.2])
    base = 0.35 * np.asarray(image, np.float64)
    return np.clip(base * (1 - alpha * strength) + alpha * strength * colour, 0, 1)


def mark_field_of_view(ax, field_of_view) -> None:
    """A dashed frame around the window the model sees (nothing when it sees everything)."""
    if field_of_view is None or field_of_view.is_whole:
        return
    ax.add_patch(
        plt.Rectangle(
            (field_of_view.left - 0.5, field_of_view.top - 0.5),
            field_of_view.width,
            field_of_view.height,
            fill=False,
            edgecolor="white",
            linestyle="--",
            linewidth=1.0,
        )
    )


def _without_ticks(fig, axes):
    """A grid figure finished: no ticks on any of its axes, laid out tight."""
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_attribution(
    image: np.ndarray, attribution: np.ndarray, title: str | None = None, axes=None
):
    """One row: the image, the signed map, its positive part and its negative part (overlaid)."""
    if axes is None:
        fig, axes = plt.subplots(1, 4, figsize=(11, 3))
    else:
        fig = axes[0].figure
    limit = symmetric_limit(attribution)
    axes[0].imshow(np.clip(image, 0, 1))
    axes[0].set_title(title or "image")
    im = axes[1].imshow(attribution, cmap=DIVERGING, vmin=-limit, vmax=limit)
    axes[1].set_title("attribution")
    axes[2].imshow(overlay(image, attribution, "positive"))
    axes[2].set_title("positive part")
    axes[3].imshow(overlay(image, attribution, "negative"))
    axes[3].set_title("negative part")
    for ax in axes:
        ax.axis("off")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    return fig


def plot_explanation_grid(
    images: np.ndarray,
    attributions: np.ndarray,
    titles: Sequence[str] | None = None,
    method: str = "",
    recoloured: bool = True,
    field_of_view=None,
):
    """The book's figure: images on the top row, their attributions below (and, like the
    book's XRAI figure, a recoloured overlay row). ``field_of_view`` (``model.field_of_view``):
    frame the window the model sees on every panel."""
    n = len(images)
    rows = 3 if recoloured else 2
    fig, axes = plt.subplots(rows, n, figsize=(1.9 * n, 1.9 * rows), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(np.clip(images[i], 0, 1))
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
        axes[1, i].imshow(_positive_scaled(attributions[i]), cmap=POSITIVE, vmin=0, vmax=1)
        if recoloured:
            axes[2, i].imshow(overlay(images[i], attributions[i], "positive"))
        for ax in axes[:, i]:
            mark_field_of_view(ax, field_of_view)
    axes[1, 0].set_ylabel(f"{method} attribution" if method else "attribution")
    if recoloured:
        axes[2, 0].set_ylabel("overlay")
    return _without_ticks(fig, axes)


def plot_method_comparison(
    images: np.ndarray,
    maps_by_method: Mapping[str, np.ndarray],
    titles: Sequence[str] | None = None,
    signed: bool = True,
    field_of_view=None,
):
    """Rows = images, columns = the image then each method's map (each map scaled on its own);
    ``field_of_view`` frames the window the model sees.

    A column is drawn signed (green = for, pink = against) when ``signed`` and any of its maps
    has negative values; otherwise its positive part is drawn (viridis).
    """
    methods = list(maps_by_method)
    n = len(images)
    fig, axes = plt.subplots(
        n, len(methods) + 1, figsize=(1.8 * (len(methods) + 1), 1.8 * n), squeeze=False
    )
    for i in range(n):
        axes[i, 0].imshow(np.clip(images[i], 0, 1))
        if titles is not None:
            axes[i, 0].set_ylabel(titles[i], fontsize=9)
        for j, m in enumerate(methods, start=1):
            a = np.asarray(maps_by_method[m][i])
            if signed and np.min(maps_by_method[m]) < 0:
                limit = symmetric_limit(a)
                axes[i, j].imshow(a, cmap=DIVERGING, vmin=-limit, vmax=limit)
            else:
                axes[i, j].imshow(_positive_scaled(a), cmap=POSITIVE, vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(m)
        for ax in axes[i]:
            mark_field_of_view(ax, field_of_view)
    axes[0, 0].set_title("image")
    return _without_ticks(fig, axes)


def plot_gap_vs_steps(table, target: float = 0.05, chosen: Mapping[str, int] | None = None):
    """Completeness gap (median over images) against the number of steps, one line a rule.

    ``table``: DataFrame with columns ``integration``, ``steps``, ``gap`` (one row per image
    and setting). ``chosen``: {integration: steps} marked with a dot.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    summary = table.groupby(["integration", "steps"])["gap"].median().reset_index()
    for name, part in summary.groupby("integration"):
        ax.plot(part["steps"], part["gap"], marker="o", ms=3, label=name)
        if chosen and name in chosen and chosen[name] is not None:
            y = part.loc[part["steps"] == chosen[name], "gap"]
            if len(y):
                ax.plot([chosen[name]], [float(y.iloc[0])], "k*", ms=12)
    ax.axhline(target, color="grey", ls="--", lw=1)
    ax.text(
        summary["steps"].min(),
        target * 1.15,
        f"{target:.0%} (IG paper's target)",
        color="grey",
        fontsize=8,
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("integration steps")
    ax.set_ylabel("completeness gap (median over images)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_agreement_heatmap(table, title: str = "", vmin: float = -1.0, vmax: float = 1.0):
    """A method x method agreement table as an annotated heat map."""
    values = np.asarray(table, dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(table), 0.8 + 0.8 * len(table)))
    im = ax.imshow(values, cmap="RdBu_r" if vmin < 0 else "viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(table.index)), table.index)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(v - (vmin + vmax) / 2) > 0.35 * (vmax - vmin) else "black",
            )
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_lime_stability(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    seeds: Sequence[int],
    stability: float | None = None,
):
    """The top LIME superpixels of one image for each seed (the blog's 3x3 figure)."""
    n = len(masks)
    cols = 3 if n == 9 else min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows), squeeze=False)
    for ax, mask, seed in zip(axes.ravel(), masks, seeds):
        shown = np.asarray(image, np.float64) * (0.3 + 0.7 * np.asarray(mask, float)[..., None])
        ax.imshow(np.clip(shown, 0, 1))
        ax.set_title(f"seed {seed}", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    if stability is not None:
        fig.suptitle(f"LIME top superpixels across seeds: mean pairwise IoU {stability:.2f}")
    fig.tight_layout()
    return fig


def plot_attribution_share(
    table,
    group: str = "model",
    value: str = "background",
    reference: str | None = "background_area",
):
    """Box plot of the positive attribution share on the background per group (e.g. the biased
    and the unbiased model), with the background's pixel share as a reference."""
    groups = list(dict.fromkeys(table[group]))
    fig, ax = plt.subplots(figsize=(1.2 + 2.0 * len(groups), 4))
    data = [table.loc[table[group] == g, value].dropna().to_numpy() for g in groups]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(groups) + 1), groups)
    for i, d in enumerate(data, start=1):
        ax.scatter(np.full(len(d), i) + np.linspace(-0.12, 0.12, len(d)), d, s=8, alpha=0.5)
    if reference is not None and reference in table:
        ax.axhline(float(table[reference].mean()), color="grey", ls="--", lw=1)
        ax.text(
            0.55,
            float(table[reference].mean()) + 0.01,
            "background's share of the pixels",
            color="grey",
            fontsize=8,
        )
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"share of positive attribution on the {value}")
    fig.tight_layout()
    return fig


def plot_deletion_insertion(curves: Mapping[str, dict], title: str = ""):
    """Mean deletion and insertion curves of each method (``faithfulness_table``'s curves)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for method, c in curves.items():
        style = dict(linestyle=":", color="grey") if method == "random" else {}
        for ax, kind in zip(axes, ("deletion", "insertion")):
            auc = np.mean(c[f"{kind}_auc"])
            ax.plot(c["fractions"], c[kind].mean(axis=0), label=f"{method} ({auc:.2f})", **style)
    for ax, kind in zip(axes, ("deletion (lower = faithful)", "insertion (higher = faithful)")):
        ax.set_title(kind)
        ax.set_xlabel("fraction of the field of view removed / inserted")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("P(target), mean over images")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_readable_views(
    image: np.ndarray,
    attribution: np.ndarray,
    sigma: float = 1.5,
    title: str | None = None,
    field_of_view=None,
):
    """One row: the image, the raw signed map, its magnitude |map|, and |map| smoothed by a
    Gaussian of ``sigma`` pixels (IG's speckle, averaged over neighbours, shows the regions at
    larger image sizes); each map with its colour bar."""
    from scipy.ndimage import gaussian_filter

    a = np.asarray(attribution, np.float64)
    views = [
        ("attribution (signed)", a, DIVERGING, -symmetric_limit(a), symmetric_limit(a)),
        ("|attribution|", np.abs(a), POSITIVE, 0.0, symmetric_limit(a)),
    ]
    smooth = gaussian_filter(np.abs(a), sigma=float(sigma))
    views.append((f"|attribution|, smoothed (σ={sigma:g} px)", smooth, POSITIVE, 0.0, None))
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    axes[0].imshow(np.clip(image, 0, 1))
    axes[0].set_title(title or "image")
    for ax, (name, m, cmap, lo, hi) in zip(axes[1:], views):
        im = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi if hi is not None else float(m.max()) or 1)
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    for ax in axes:
        ax.axis("off")
        mark_field_of_view(ax, field_of_view)
    return fig
