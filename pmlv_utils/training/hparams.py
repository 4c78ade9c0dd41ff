"""Local hyperparameter search: random draws from the book's search space, one run each.

On Vertex the same space is a tuning job (``07_training/vertex/hparam.yaml``) and each trial
reports its metric with :func:`pmlv_utils.training.report_tuning_metric`.
"""

from __future__ import annotations

import os

import numpy as np

from .. import dataset_files, safe_io
from .config import TrainConfig
from .run import train_and_export

# The book's search space (07_training/flowers/hparam.yaml), used by hparam_search().
BOOK_SEARCH_SPACE = {
    "l2": ("uniform", 0.0, 0.2),
    "batch_size": ("choice", [16, 32, 64]),
    "num_hidden": ("choice", [8, 16, 24]),
    "with_color_distort": ("choice", [False, True]),
    "crop_ratio": ("uniform", 0.5, 0.8),
}


def sample_hparams(search_space: dict, rng: np.random.Generator) -> dict:
    """One random draw from a search space like :data:`BOOK_SEARCH_SPACE`."""
    params = {}
    for name, spec in search_space.items():
        if spec[0] == "uniform":
            params[name] = round(float(rng.uniform(spec[1], spec[2])), 4)
        elif spec[0] == "choice":
            params[name] = spec[1][int(rng.integers(len(spec[1])))]
        else:
            raise ValueError(f"{name}: unknown search-space kind {spec[0]!r}")
    return params


def hparam_search(
    job_dir: str,
    input_topdir: str,
    labels_file: str,
    config: TrainConfig | None = None,
    *,
    num_trials: int = 4,
    search_space: dict | None = None,
    pattern: str = dataset_files.SHARD_SUFFIX,
    log=print,
) -> list[dict]:
    """Random search over ``search_space`` (default: the book's), one trainer run per trial
    in ``<job_dir>/trial_<k>`` (no export); trials ranked by val_accuracy (never by test).

    config: the settings shared by all trials (num_epochs, img_size, ...); each trial
    replaces the sampled ones. ``config.seed`` seeds both the draws and every trial.
    Returns one dict per trial: the sampled values, val/test accuracy, best epoch, seconds.
    """
    config = config or TrainConfig()
    rng = np.random.default_rng(config.seed)
    space = search_space or BOOK_SEARCH_SPACE
    trials = []
    for k in range(num_trials):
        params = sample_hparams(space, rng)
        log(f"trial {k}: {params}")
        m = train_and_export(
            os.path.join(str(job_dir), f"trial_{k}"),
            input_topdir,
            labels_file,
            config.replace(**params),
            pattern=pattern,
            export=False,
            verbose=0,
            log=lambda *a, **kw: None,
        )
        trials.append(
            {
                "trial": k,
                **params,
                "val_accuracy": m["val_accuracy"],
                "test_accuracy": m["test_accuracy"],
                "best_epoch": m["best_epoch"],
                "seconds": m["seconds"],
            }
        )
    trials.sort(key=lambda t: -t["val_accuracy"])
    safe_io.write_json(os.path.join(str(job_dir), "hparam_trials.json"), trials)
    return trials
