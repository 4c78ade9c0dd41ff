"""The trainer: :func:`train_and_export` trains, checkpoints, early-stops, resumes, evaluates
and exports the flowers classifier. It writes under ``job_dir``::

    checkpoints/              best.keras, last.keras, state.json (training.checkpoints)
    export/                   SavedModel of the BEST weights (pmlv_utils.export)
    tensorboard/              TensorBoard logs: scalars, graph, input images, confusion
                              matrix per epoch (training.tensorboard)
    training_curves.png       loss and accuracy per epoch, best epoch marked
    metrics.json              accuracies, best epoch, epochs run, early stop and why,
                              seconds, settings
    hypertune.json            the tuning metric, when cloudml-hypertune is not installed

Two things differ from the book's trainer on purpose: the export uses the best
checkpoint (the book exported the last epoch), and ``resume=True`` continues from
``last.keras`` at the saved epoch with the early-stopping state (the book's ``--resume``
reloaded nothing).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import keras
import tensorflow as tf

from .. import dataset_files, distribute, ingest, safe_io
from ..export import export_saved_model
from ..model import build_model, count_params
from ..preprocess import RandomCropOrCenter, RandomZoomCrop  # noqa: F401  (registered)
from . import checkpoints, loop
from . import tensorboard as tb
from .config import TrainConfig, resume_differences
from .evaluation import evaluate, plot_training_curves, report_tuning_metric

# Bump when saved artifacts change meaning (workspace.ensure_trained_model then retrains).
TRAINER_VERSION = "6"  # 6: the small CNN's first convolution has stride 2; 5: no inference crop
CACHE_LIMIT_BYTES = 1 << 30  # cache decoded images in memory below this size
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class _Job:
    """Where one run reads and writes (its settings are in ``config`` and ``settings``)."""

    config: TrainConfig
    patterns: dict  # {split: glob of its shards}
    counts: dict  # {split: number of records}; no "test" when there is no test split
    settings: dict  # the config + labels, pattern, replicas, trainer version (saved)
    out_dir: str  # job_dir on the chief; a temporary folder on the other workers
    chief: bool

    @property
    def ckpt_dir(self) -> str:
        return checkpoints.checkpoint_dir(self.out_dir)


def train_and_export(
    job_dir: str,
    input_topdir: str,
    labels_file: str,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    pattern: str = dataset_files.SHARD_SUFFIX,
    export: bool = True,
    tensorboard: bool = True,
    strategy=None,
    verbose: int = 2,
    log=print,
) -> dict:
    """Train on ``<input_topdir>/train<pattern>``, early-stop on ``valid<pattern>``, test on
    ``test<pattern>``, export the best weights; return (and write) the metrics dict.

    config: the settings (:class:`TrainConfig`; default: ``TrainConfig()``).
    resume: continue from ``checkpoints/last.keras`` at the saved epoch; refused (ValueError)
        when the saved settings that define the model differ from ``config``'s.
    pattern: the shard names after the split name (the book's CLI passes ``-*``).
    tensorboard: write TensorBoard logs to ``<job_dir>/tensorboard`` (chief only).
    strategy: a ready ``tf.distribute`` strategy (default: ``config.distribute``'s).
    Under MultiWorkerMirroredStrategy only the chief writes to ``job_dir``; the other
    workers write to a temporary folder that is removed at the end.
    """
    config = config or TrainConfig()
    # The strategy first: MultiWorkerMirroredStrategy must exist before TF starts up.
    strategy = strategy or distribute.create_strategy(config.distribute)
    start_time = time.perf_counter()
    job = _prepare_job(job_dir, input_topdir, labels_file, config, pattern, strategy, resume, log)
    keras.utils.set_random_seed(config.seed)
    try:
        with loop.deterministic_ops(config.deterministic):
            state = _train(job, strategy, resume, verbose, log, tensorboard)
            metrics = _evaluate_and_export(job, state, export)
    finally:
        if not job.chief:
            shutil.rmtree(job.out_dir, ignore_errors=True)
    metrics["seconds"] = round(time.perf_counter() - start_time, 2)
    if job.chief:
        safe_io.write_json(os.path.join(job.out_dir, "metrics.json"), metrics)
        metrics["hypertune"] = report_tuning_metric(
            state["best_val_accuracy"], state["epochs_done"], job.out_dir
        )
    test = metrics["test_accuracy"]
    log(
        f"best epoch {state['best_epoch']}/{state['epochs_done']}: "
        f"train {metrics['train_accuracy']:.4f}, val {metrics['val_accuracy']:.4f}, "
        f"test {'-' if test is None else f'{test:.4f}'} ({metrics['seconds']:.0f} s)"
    )
    return metrics


def count_split_records(patterns: dict, log=print) -> dict:
    """``{split: number of records}``; every shard is read once, so a pattern that matches
    nothing or a broken shard stops here with an error naming it (a missing test split
    is allowed: no test accuracy then)."""
    counts = {}
    for split, pattern in patterns.items():
        try:
            files = ingest.list_shards(pattern)
        except FileNotFoundError:
            if split == "test":
                log(f"no test shards match {pattern!r}: test accuracy not measured")
                continue
            raise
        counts[split] = sum(ingest.check_shards(files).values())
        if counts[split] == 0:
            raise ValueError(f"the shards matching {pattern!r} hold no records")
    log("images: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _prepare_job(job_dir, input_topdir, labels_file, config, pattern, strategy, resume, log):
    """Check the data (before anything is written), then make the checkpoint folder
    (emptied unless resuming)."""
    labels = dataset_files.read_labels(str(labels_file))
    patterns = {s: dataset_files.split_pattern(input_topdir, s, pattern) for s in SPLITS}
    counts = count_split_records(patterns, log)
    chief = distribute.is_chief(strategy)
    out_dir = str(job_dir) if chief else tempfile.mkdtemp(prefix="pmlv_worker_")
    settings = {
        **config.to_dict(),
        "pattern": pattern,
        "labels": labels,
        "num_replicas": int(strategy.num_replicas_in_sync),
        "trainer_version": TRAINER_VERSION,
    }
    job = _Job(config, patterns, counts, settings, out_dir, chief)
    if not resume and os.path.isdir(job.ckpt_dir):
        shutil.rmtree(job.ckpt_dir)
    os.makedirs(job.ckpt_dir, exist_ok=True)
    return job


def _train(job: _Job, strategy, resume: bool, verbose: int, log, tensorboard: bool) -> dict:
    """Build (or reload for resume) and fit the model; returns the training state."""
    train_ds, valid_ds, steps_per_epoch = _datasets(job, strategy)
    with strategy.scope():
        model, state = _build_or_resume(job, resume, steps_per_epoch, log)
    start = time.perf_counter()
    if state["stopped_early"] or state["epochs_done"] >= job.config.num_epochs:
        log(f"training already finished at epoch {state['epochs_done']}")
    else:
        # the checkpoint callback first: it records the logs before others add to them
        callbacks = [
            checkpoints.CheckpointAndEarlyStop(job.ckpt_dir, job.config.patience, state, log=log)
        ]
        if tensorboard and job.chief:
            callbacks += _tensorboard_callbacks(job, strategy, valid_ds)
        loop.run_epochs(
            model,
            strategy,
            train_ds,
            valid_ds,
            job.config,
            state["epochs_done"],
            callbacks,
            verbose=verbose,
            log=log,
        )
    if not state["stopped_early"]:
        state["stop_reason"] = f"ran all {state['epochs_done']} epochs (num_epochs)"
    state["fit_seconds"] = round(time.perf_counter() - start, 2)
    return state


def _tensorboard_callbacks(job: _Job, strategy, valid_ds, num_images: int = 6) -> list:
    """The TensorBoard callbacks (training.tensorboard), with the first training records
    as the sample images."""
    c = job.config
    first = ingest.make_dataset(
        job.patterns["train"], num_images, c.img_size, training=False, validate=False
    )
    images = next(iter(first))[0].numpy()
    augment = None
    if c.augment:
        augment = dict(
            crop_ratio=c.crop_ratio, with_color_distort=c.with_color_distort, flip=c.flip
        )
    return tb.callbacks(
        job.out_dir,
        loop.uses_custom_loop(c, strategy),
        images,
        valid_ds,
        job.settings["labels"],
        augment,
    )


def _datasets(job: _Job, strategy):
    """``(train_ds, valid_ds, training steps per epoch)``, cached in memory when small."""
    config, counts = job.config, job.counts
    size, batch = config.img_size, config.batch_size
    cache = counts["train"] * size * size * 3 * 4 < CACHE_LIMIT_BYTES
    train_ds = ingest.make_dataset(
        job.patterns["train"],
        batch,
        size,
        training=True,
        shuffle_seed=config.seed,
        cache=cache,
        validate=False,
    )
    valid_ds = ingest.make_dataset(
        job.patterns["valid"], batch, size, training=False, cache=cache, validate=False
    )
    steps = {s: math.ceil(counts[s] / batch) for s in ("train", "valid")}
    if cache:  # one pass fills the caches: Keras, knowing the length, never reads to the end
        for ds in (train_ds, valid_ds):
            ingest.drain(ds)
    # Known lengths: without them Keras 3.15 counts one optimizer step too many per epoch
    # (at the end of the data), which shifts the learning-rate schedule.
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps["train"]))
    valid_ds = valid_ds.apply(tf.data.experimental.assert_cardinality(steps["valid"]))
    if getattr(strategy, "cluster_resolver", None) is not None:
        # Every worker reads all records and keeps its share of each global batch, so
        # the batches are those of a one-machine run (FILE sharding would need at least
        # one shard per worker and changes the order).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        train_ds, valid_ds = train_ds.with_options(options), valid_ds.with_options(options)
    return train_ds, valid_ds, steps["train"]


def _build_or_resume(job: _Job, resume: bool, steps_per_epoch: int, log):
    """``(model, state)``: the saved ones when resuming (same settings), else new ones."""
    state = checkpoints.load_state(job.out_dir) if resume else None
    last_path = os.path.join(job.ckpt_dir, checkpoints.LAST)
    if state and os.path.exists(last_path):
        changed = resume_differences(state["settings"], job.settings)
        if changed:
            raise ValueError(
                f"cannot resume from {job.ckpt_dir}: settings differ (saved, now): {changed}"
            )
        model = keras.models.load_model(last_path)
        log(
            f"resuming after epoch {state['epochs_done']} (best so far: epoch "
            f"{state['best_epoch']}, val_accuracy {state['best_val_accuracy']:.4f})"
        )
        state["settings"] = job.settings
        return model, state
    if resume:
        log(f"nothing to resume in {job.ckpt_dir}: starting from epoch 0")
    c = job.config
    model = build_model(
        c.model_kind,
        num_classes=len(job.settings["labels"]),
        img_size=c.img_size,
        num_hidden=c.num_hidden,
        crop_ratio=c.crop_ratio,
        with_color_distort=c.with_color_distort,
        weights=c.weights,
        lrate=c.lrate,
        seed=c.seed,
        l2=c.l2,
        augment=c.augment,
        decay_steps=steps_per_epoch * c.num_epochs,
        flip=c.flip,
        alpha=c.alpha,
        freeze_backbone=c.freeze_backbone,
    )
    return model, checkpoints.new_state(job.settings)


def _evaluate_and_export(job: _Job, state: dict, export: bool) -> dict:
    """Metrics of the BEST checkpoint on every split, the curves plot, and the export."""
    size, labels = job.config.img_size, job.settings["labels"]
    best = keras.models.load_model(os.path.join(job.ckpt_dir, checkpoints.BEST))
    results = {split: evaluate(best, job.patterns[split], size, labels) for split in job.counts}
    test = results.get("test")
    metrics = {
        "train_accuracy": results["train"]["accuracy"],
        "val_accuracy": results["valid"]["accuracy"],
        "test_accuracy": test["accuracy"] if test else None,
        "test_confusion_matrix": test["confusion_matrix"] if test else None,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epochs_done"],
        "stopped_early": state["stopped_early"],
        "patience": job.config.patience,
        "stop_reason": state.get("stop_reason"),
        "num_images": job.counts,
        "fit_seconds": state["fit_seconds"],
        "params": count_params(best),
        "settings": job.settings,
        "history": state["history"],
        "labels": labels,
    }
    plot_training_curves(
        state["history"],
        state["best_epoch"],
        os.path.join(job.out_dir, "training_curves.png"),
        title=f"{job.config.model_kind}, {size}px, best epoch {state['best_epoch']}",
    )
    if export:
        export_saved_model(
            best,
            os.path.join(job.out_dir, "export"),
            labels,
            size,
            job.config.model_kind,
            extra_info={
                "best_epoch": state["best_epoch"],
                "val_accuracy": metrics["val_accuracy"],
                "test_accuracy": metrics["test_accuracy"],
                "trainer_version": TRAINER_VERSION,
            },
        )
    return metrics
