"""Benchmark timing: CPU and wall-clock seconds, tables of ratios, bar charts.

The book times its steps with ``%time`` (CPU times and wall time). :func:`time_it` measures
the same two numbers, repeated, and keeps the median: CPU time is the process's time on all
its threads (``time.process_time``), so ``cpu_s / wall_s`` says how many cores were busy on
average. Speed targets are shown as ratios measured in one run, never as assertions.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

__all__ = ["time_it", "timing_table", "plot_speedups", "plot_rates"]


def time_it(
    fn: Callable[..., Any],
    repeats: int = 3,
    setup: Callable[[], Any] | None = None,
    warmup: int = 0,
    label: str | None = None,
    progress: bool = True,
) -> dict:
    """Run ``fn`` ``repeats`` times; return the medians ``{"cpu_s", "wall_s"}`` and the runs.

    setup: called (untimed) before every run; its result is passed to ``fn``. Use it to
        build a fresh object per run (e.g. a dataset whose cache must start empty).
    warmup: untimed runs first (e.g. to trace a tf.function once).
    The result also holds ``cpu_runs``, ``wall_runs`` (seconds of each run) and ``value``
    (what the last run of ``fn`` returned).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")

    def run_once():
        arg = (setup(),) if setup is not None else ()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        value = fn(*arg)
        return time.process_time() - cpu0, time.perf_counter() - wall0, value

    for _ in range(warmup):
        run_once()
    cpu_runs, wall_runs, value = [], [], None
    for _ in tqdm(
        range(repeats),
        desc=label or getattr(fn, "__name__", "run"),
        leave=False,
        disable=None if progress else True,  # a bar only on a terminal, never in a notebook
    ):
        cpu, wall, value = run_once()
        cpu_runs.append(cpu)
        wall_runs.append(wall)
    return dict(
        cpu_s=statistics.median(cpu_runs),
        wall_s=statistics.median(wall_runs),
        cpu_runs=cpu_runs,
        wall_runs=wall_runs,
        value=value,
    )


def timing_table(
    results: Mapping[str, Mapping[str, float]],
    baseline: str | None = None,
    book: Mapping[str, Mapping[str, float] | float] | None = None,
    items: int | None = None,
):
    """A pandas DataFrame of timings, one row per variant, with ratio columns.

    results: ``{name: time_it(...) result}`` (only ``cpu_s``/``wall_s`` are used).
    baseline: the row the ratios are relative to (default: the first row).
    book: the book's figures, ``{name: {"cpu_s": .., "wall_s": ..}}`` or ``{name: wall_s}``;
        adds ``book_wall_s`` and ``book_speedup`` (book baseline wall / book wall).
    items: how many images each run processed; adds ``items_per_s``.

    Columns: ``cpu_s``, ``wall_s``, ``speedup`` (baseline wall / wall), ``cpu_ratio``
    (cpu / baseline cpu), ``cores_busy`` (cpu / wall).
    """
    if not results:
        raise ValueError("timing_table: no results")
    names = list(results)
    baseline = baseline if baseline is not None else names[0]
    if baseline not in results:
        raise KeyError(f"baseline {baseline!r} is not one of {names}")
    df = pd.DataFrame(
        {
            "cpu_s": [float(results[n]["cpu_s"]) for n in names],
            "wall_s": [float(results[n]["wall_s"]) for n in names],
        },
        index=names,
    )
    df.index.name = "variant"
    df["speedup"] = df.loc[baseline, "wall_s"] / df["wall_s"]
    df["cpu_ratio"] = df["cpu_s"] / df.loc[baseline, "cpu_s"]
    df["cores_busy"] = df["cpu_s"] / df["wall_s"]
    if items:
        df["items_per_s"] = items / df["wall_s"]
    if book:

        def wall(v):
            return float(v["wall_s"] if isinstance(v, Mapping) else v)

        book_wall = {n: wall(v) for n, v in book.items()}
        df["book_wall_s"] = [book_wall.get(n, float("nan")) for n in names]
        base = book_wall.get(baseline, float("nan"))
        df["book_speedup"] = base / df["book_wall_s"]
    return df


def plot_speedups(
    tables: Mapping[str, Any],
    column: str = "speedup",
    book_column: str | None = "book_speedup",
    reference: Mapping[str, float] | None = None,
    title: str = "Speed-up over the plain version",
    ax=None,
    log: bool = False,
):
    """Horizontal bars of ``column`` (ours) and ``book_column`` (the book's) for each table.

    tables: ``{panel title: timing_table DataFrame}``; one panel per table.
    reference: vertical lines to draw, ``{label: x}`` (e.g. a goal or a ceiling).
    log: a logarithmic x axis (for speed-ups spanning orders of magnitude).
    Returns the matplotlib Figure.
    """
    if ax is None:
        fig, axes = plt.subplots(
            1,
            len(tables),
            figsize=(6 * len(tables), 0.5 * max(len(t) for t in tables.values()) + 1.8),
            squeeze=False,
        )
        axes = axes[0]
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    for axis, (panel, df) in zip(axes, tables.items()):
        y = np.arange(len(df))
        has_book = book_column and book_column in df and df[book_column].notna().any()
        h = 0.38 if has_book else 0.7
        axis.barh(y - (h / 2 if has_book else 0), df[column], height=h, label="ours")
        for yi, v in zip(y, df[column]):
            axis.text(v, yi - (h / 2 if has_book else 0), f" {v:.1f}×", va="center", fontsize=8)
        if has_book:
            axis.barh(
                y + h / 2,
                df[book_column].fillna(0 if not log else float("nan")),
                height=h,
                label="book",
                alpha=0.6,
            )
        for label, x in (reference or {}).items():
            axis.axvline(x, linestyle="--", color="gray")
            axis.text(x, -0.55, f" {label}", fontsize=8, color="gray", va="bottom")
        if log:
            axis.set_xscale("log")
        axis.set_yticks(y, df.index)
        axis.invert_yaxis()
        axis.set_xlabel(f"{column} (× the first row)")
        axis.set_title(panel)
        axis.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_rates(
    tables: Mapping[str, Any],
    ceiling: float,
    fraction: float | None = 0.8,
    column: str = "items_per_s",
    title: str = "Images per second against the ceiling",
):
    """Horizontal bars of each row's rate, grouped by table, with the ceiling (and a
    ``fraction`` of it) as vertical lines. Returns the matplotlib Figure."""
    labels, values, groups = [], [], []
    for panel, df in tables.items():
        labels += [f"{panel}: {name}" for name in df.index]
        values += list(df[column])
        groups += [panel] * len(df)
    colours = {g: f"C{i}" for i, g in enumerate(dict.fromkeys(groups))}
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 1.5))
    y = np.arange(len(labels))
    ax.barh(y, values, color=[colours[g] for g in groups])
    ax.axvline(ceiling, color="gray", linestyle="--")
    ax.text(ceiling, -0.6, " ceiling", color="gray", fontsize=8, va="bottom")
    if fraction:
        ax.axvline(fraction * ceiling, color="gray", linestyle=":")
        ax.text(
            fraction * ceiling,
            -0.6,
            f"{fraction:g}× ",
            color="gray",
            fontsize=8,
            va="bottom",
            ha="right",
        )
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("images per second (wall)")
    ax.set_title(title, pad=16)
    fig.tight_layout()
    return fig
