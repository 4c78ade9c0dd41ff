"""Augmentation ablation: which of crop, flip and colour helps, measured over a few seeds.

    runs = training.augmentation_ablation(job_dir, tfrecord_dir, labels_file, config, seeds=(1, 2))
    training.ablation_summary(runs)       # test accuracy mean ± spread per variant
    training.plot_overfitting(runs)       # train vs validation accuracy: none vs all

Each variant is a :class:`TrainConfig` change (:data:`ABLATION_VARIANTS`); every run is a
full trainer run (early stopping on validation, the best epoch's test accuracy) in
``<job_dir>/<variant>/seed_<s>``, without export. ``ablation_runs.json`` keeps the rows.
Run and read in 07_training/07e_augment_transfer.ipynb ("Which augmentation helps?").
"""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import dataset_files, safe_io
from ..model import DEFAULT_CROP_RATIO
from .config import TrainConfig
from .run import train_and_export

# name -> TrainConfig changes ("crop" keeps the config's crop_ratio, or the default one).
ABLATION_VARIANTS = {
    "no augmentation": dict(augment=False),
    "flip only": dict(crop_ratio=1.0, flip=True, with_color_distort=False),
    "crop only": dict(crop=True, flip=False, with_color_distort=False),
    "colour only": dict(crop_ratio=1.0, flip=False, with_color_distort=True),
    "all": dict(crop=True, flip=True, with_color_distort=True),
}
RUN_COLUMNS = (
    "variant",
    "seed",
    "test_accuracy",
    "val_accuracy",
    "train_accuracy",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    "seconds",
)


def variant_config(config: TrainConfig, changes: dict) -> TrainConfig:
    """``config`` with one variant's changes (``crop=True``: a crop_ratio below 1)."""
    changes = dict(changes)
    if changes.pop("crop", False):
        crop = config.crop_ratio if config.crop_ratio < 1.0 else DEFAULT_CROP_RATIO
        changes["crop_ratio"] = crop
    return config.replace(augment=changes.pop("augment", True), **changes)


def _folder_name(variant: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")


def augmentation_ablation(
    job_dir: str,
    input_topdir: str,
    labels_file: str,
    config: TrainConfig | None = None,
    *,
    seeds=(1, 2),
    variants: dict | None = None,
    pattern: str = dataset_files.SHARD_SUFFIX,
    log=print,
) -> pd.DataFrame:
    """One trainer run per (variant, seed); returns one row per run (:data:`RUN_COLUMNS`
    and ``history``, the per-epoch curves) and writes ``<job_dir>/ablation_runs.json``."""
    config = config or TrainConfig()
    variants = variants or ABLATION_VARIANTS
    rows = []
    for name, changes in variants.items():
        for seed in seeds:
            run_config = variant_config(config, changes).replace(seed=int(seed))
            m = train_and_export(
                os.path.join(str(job_dir), _folder_name(name), f"seed_{seed}"),
                input_topdir,
                labels_file,
                run_config,
                pattern=pattern,
                export=False,
                tensorboard=False,
                verbose=0,
                log=lambda *a, **kw: None,
            )
            row = {"variant": name, "seed": int(seed)}
            row.update({k: m[k] for k in RUN_COLUMNS[2:]})
            row["history"] = m["history"]
            log(
                f"{name:16s} seed {seed}: test {m['test_accuracy']:.3f}, val "
                f"{m['val_accuracy']:.3f}, train {m['train_accuracy']:.3f} (best epoch "
                f"{m['best_epoch']}/{m['epochs_run']}, {m['seconds']:.0f} s)"
            )
            rows.append(row)
    safe_io.write_json(os.path.join(str(job_dir), "ablation_runs.json"), rows)
    return pd.DataFrame(rows)


def ablation_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant (in run order): test accuracy mean, spread (standard deviation over the
    seeds), min and max, the train - validation gap (over-fitting), epochs and seconds."""
    runs = runs.assign(gap=runs["train_accuracy"] - runs["val_accuracy"])
    grouped = runs.groupby("variant", sort=False)
    table = pd.DataFrame(
        {
            "test_mean": grouped["test_accuracy"].mean(),
            "test_spread": grouped["test_accuracy"].std(ddof=0),
            "test_min": grouped["test_accuracy"].min(),
            "test_max": grouped["test_accuracy"].max(),
            "train_minus_val": grouped["gap"].mean(),
            "best_epoch": grouped["best_epoch"].mean(),
            "epochs_run": grouped["epochs_run"].mean(),
            "seconds": grouped["seconds"].sum(),
            "seeds": grouped["seed"].count(),
        }
    )
    table["test_accuracy"] = [
        f"{m:.3f} ± {s:.3f}" for m, s in zip(table["test_mean"], table["test_spread"])
    ]
    return table.round(3)


def plot_overfitting(
    runs: pd.DataFrame, variants=("no augmentation", "all"), metric: str = "accuracy"
):
    """Training vs validation ``metric`` per epoch for each of ``variants`` (every seed a
    line): without augmentation the training curve runs away from the validation one."""
    fig = Figure(figsize=(5.0 * len(variants), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(variants), sharey=True))
    for ax, name in zip(axes, variants):
        for i, (_, r) in enumerate(runs[runs["variant"] == name].iterrows()):
            history = r["history"]
            epochs = range(1, len(history[metric]) + 1)
            label = lambda what: f"{what} (seed {r['seed']})"  # noqa: E731
            ax.plot(epochs, history[metric], "-", color=f"C{i}", label=label("train"))
            ax.plot(epochs, history[f"val_{metric}"], "--", color=f"C{i}", label=label("val"))
            ax.axvline(r["best_epoch"], color=f"C{i}", alpha=0.3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(metric)
    fig.suptitle(f"{metric}: training (solid) vs validation (dashed); best epoch marked")
    fig.tight_layout()
    return fig
