"""Train, checkpoint, early-stop, resume, evaluate and export the flowers classifier.

:func:`train_and_export` is the trainer the CLI (``python -m pmlv_utils.train``), the
workspace (``ensure_trained_model``), the pipeline and Vertex jobs run. It writes under
``job_dir``::

    checkpoints/best.keras    the weights with the best val_accuracy so far
    checkpoints/last.keras    the model (and optimizer) after the last finished epoch
    checkpoints/state.json    epochs done, best epoch, early-stopping counter, history
    export/                   SavedModel of the BEST weights (pmlv_utils.export)
    training_curves.png       loss and accuracy per epoch, best epoch marked
    metrics.json              accuracies, best epoch, epochs run, seconds, settings
    hypertune.json            the tuning metric, when cloudml-hypertune is not installed

Two things differ from the book's trainer on purpose: the export uses the best
checkpoint (the book exported the last epoch), and ``resume=True`` continues from
``last.keras`` at the saved epoch with the early-stopping state (the book's ``--resume``
reloaded nothing).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time

import numpy as np

from . import safe_io

TRAINER_VERSION = "4"

# The book's search space (07_training/flowers/hparam.yaml), used by hparam_search().
BOOK_SEARCH_SPACE = {
    "l2": ("uniform", 0.0, 0.2),
    "batch_size": ("choice", [16, 32, 64]),
    "num_hidden": ("choice", [8, 16, 24]),
    "with_color_distort": ("choice", [False, True]),
    "crop_ratio": ("uniform", 0.5, 0.8),
}

# Settings that must match for resume=True to continue a run.
RESUME_KEYS = (
    "model_kind",
    "img_size",
    "num_hidden",
    "crop_ratio",
    "with_color_distort",
    "augment",
    "l2",
    "seed",
    "labels",
)
CACHE_LIMIT_BYTES = 1 << 30  # cache decoded images in memory below this size


# --------------------------------------------------------------------------------------
# Checkpoints, early stopping and resume state
# --------------------------------------------------------------------------------------


def _checkpoint_callback():
    import keras

    class CheckpointAndEarlyStop(keras.callbacks.Callback):
        """Saves best/last checkpoints and a resumable state; stops after ``patience``
        epochs without a better val_accuracy (ties broken by val_loss).

        Keras' own ModelCheckpoint + EarlyStopping do the first and the last, but their
        counters restart at zero on every ``fit`` call, so a resumed run would forget how
        long it had been waiting. Here the whole state is in ``state.json``.
        """

        def __init__(self, ckpt_dir: str, patience: int, state: dict, log=print):
            super().__init__()
            self.ckpt_dir, self.patience, self.state, self.log = ckpt_dir, patience, state, log

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            s = self.state
            for key, value in logs.items():
                s["history"].setdefault(key, []).append(float(value))
            val = float(logs.get("val_accuracy", float("nan")))
            val_loss = float(logs.get("val_loss", float("nan")))
            s["epochs_done"] = epoch + 1
            # Better: higher val_accuracy, or the same with a lower val_loss (small
            # validation sets tie often, and a tie should not count as "no progress").
            if s["best_val_accuracy"] is None or (val, -val_loss) > (
                s["best_val_accuracy"],
                -s.get("best_val_loss", float("inf")),
            ):
                s.update(
                    best_val_accuracy=val, best_val_loss=val_loss, best_epoch=epoch + 1, wait=0
                )
                _save_atomic(self.model, os.path.join(self.ckpt_dir, "best.keras"))
            else:
                s["wait"] += 1
            if s["wait"] >= self.patience:
                s["stopped_early"] = True
                self.model.stop_training = True
                self.log(
                    f"early stop after epoch {epoch + 1}: no better val_accuracy than "
                    f"{s['best_val_accuracy']:.4f} (epoch {s['best_epoch']}) for "
                    f"{self.patience} epochs"
                )
            # last.keras before state.json: the state never points past the saved model
            _save_atomic(self.model, os.path.join(self.ckpt_dir, "last.keras"))
            safe_io.write_json(os.path.join(self.ckpt_dir, "state.json"), s)

    return CheckpointAndEarlyStop


def _save_atomic(model, path: str) -> None:
    tmp = path + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def load_state(job_dir: str) -> dict | None:
    """``checkpoints/state.json`` of a job dir, or None."""
    path = os.path.join(str(job_dir), "checkpoints", "state.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def evaluate(
    model, pattern: str, img_size: int, labels: list[str] | None = None, batch_size: int = 64
) -> dict:
    """Accuracy and confusion matrix of ``model`` on the TFRecords matching ``pattern``.

    model: a Keras model, or the folder of an exported SavedModel (its ``xai_model``
    signature is called on the same preprocessed images).
    Returns ``{"accuracy", "n", "confusion_matrix" (rows: true, cols: predicted), "labels"}``.
    """
    import tensorflow as tf

    from . import ingest

    if isinstance(model, (str, os.PathLike)):
        from .export import load_signatures, read_model_info

        info = read_model_info(model)
        labels = labels or info["labels"]
        signature = load_signatures(model)["xai_model"]
        predict = lambda x: signature(input_images=x)["probability"].numpy()  # noqa: E731
    else:
        predict = lambda x: model(x, training=False).numpy()  # noqa: E731
    ds = ingest.make_dataset(pattern, batch_size=batch_size, img_size=img_size, training=False)
    true, pred = [], []
    for images, label_int in ds:
        true.append(label_int.numpy())
        pred.append(np.argmax(predict(images), axis=1))
    true, pred = np.concatenate(true), np.concatenate(pred)
    num_classes = len(labels) if labels else int(max(true.max(), pred.max()) + 1)
    cm = tf.math.confusion_matrix(true, pred, num_classes=num_classes).numpy()
    return {
        "accuracy": float(np.mean(true == pred)),
        "n": int(len(true)),
        "confusion_matrix": cm.tolist(),
        "labels": list(labels) if labels else None,
    }


def plot_training_curves(
    history: dict, best_epoch: int | None = None, path: str | None = None, title: str | None = None
):
    """Loss and accuracy per epoch (train and validation); returns the matplotlib Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        epochs = range(1, len(history.get(metric, [])) + 1)
        ax.plot(epochs, history.get(metric, []), "o-", label=f"train {metric}")
        ax.plot(epochs, history.get(f"val_{metric}", []), "s-", label=f"validation {metric}")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=90)
    return fig


def list_artifacts(job_dir: str) -> list[dict]:
    """Files a trainer run wrote (relative path and size), for a table."""
    rows = []
    for root, _, files in os.walk(str(job_dir)):
        for name in sorted(files):
            path = os.path.join(root, name)
            rows.append(
                {
                    "file": os.path.relpath(path, str(job_dir)),
                    "KiB": round(os.path.getsize(path) / 1024, 1),
                }
            )
    return sorted(rows, key=lambda r: r["file"])


def report_tuning_metric(
    value: float, global_step: int, job_dir: str, tag: str = "accuracy"
) -> str:
    """Report the hyperparameter-tuning metric to Vertex (cloudml-hypertune) if installed,
    else write ``<job_dir>/hypertune.json``. Returns where it went."""
    try:
        import hypertune  # cloudml-hypertune, present in Vertex training containers
    except ImportError:
        path = os.path.join(str(job_dir), "hypertune.json")
        safe_io.write_json(
            path,
            {
                "hyperparameter_metric_tag": tag,
                "metric_value": float(value),
                "global_step": int(global_step),
            },
        )
        return path
    hypertune.HyperTune().report_hyperparameter_tuning_metric(
        hyperparameter_metric_tag=tag, metric_value=float(value), global_step=int(global_step)
    )
    return "cloudml-hypertune"


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------


def _enable_op_determinism():
    """Turn on TF op determinism (process-wide); return a function that turns it back off
    if it was off (through TF's private switch, when that exists), else None."""
    import tensorflow as tf

    try:
        from tensorflow.python.framework import config as tf_config

        was_on = tf_config.is_op_determinism_enabled()
        switch_off = tf_config.disable_op_determinism
    except (ImportError, AttributeError):
        was_on, switch_off = True, None
    tf.config.experimental.enable_op_determinism()
    return None if was_on or switch_off is None else switch_off


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    cluster = resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id) == 0


def train_and_export(
    job_dir: str,
    input_topdir: str,
    labels_file: str,
    img_size: int = 64,
    num_epochs: int = 15,
    batch_size: int = 32,
    lrate: float = 2e-3,
    num_hidden: int = 16,
    crop_ratio: float | None = None,
    with_color_distort: bool = True,
    model_kind: str = "small_cnn",
    pattern: str = "-*",
    distribute: str = "cpu",
    resume: bool = False,
    seed: int = 42,
    patience: int = 5,
    l2: float = 0.0,
    weights=None,
    augment: bool = True,
    export: bool = True,
    strategy=None,
    deterministic: bool = True,
    training_loop: str = "auto",
    verbose: int = 2,
    log=print,
) -> dict:
    """Train on ``<input_topdir>/train<pattern>``, early-stop on ``valid<pattern>``, test on
    ``test<pattern>``, export the best weights; return (and write) the metrics dict.

    distribute: "cpu", "gpus_one_machine", "gpus_multiple_machines" or "tpu"
        (:func:`pmlv_utils.distribute.create_strategy`), or pass a ready ``strategy``.
    resume: continue from ``checkpoints/last.keras`` at the saved epoch (same settings).
    training_loop: "fit" (Keras), "custom" (:func:`fit_distributed`) or "auto": ``fit``
        with one replica, the custom loop with several (see fit_distributed for why).
    deterministic: enable TensorFlow's op determinism while training (same seed -> same
        weights on CPU, also across processes; without it oneDNN's threaded kernels vary).
    Under MultiWorkerMirroredStrategy only the chief writes to ``job_dir``; the other
    workers write to a temporary folder that is removed at the end.
    """
    from . import distribute as dist
    from .model import DEFAULT_CROP_RATIO

    # The strategy first: MultiWorkerMirroredStrategy must exist before TF starts up.
    strategy = strategy or dist.create_strategy(distribute)

    import keras

    from . import dataset_files

    start_time = time.perf_counter()
    crop_ratio = DEFAULT_CROP_RATIO if crop_ratio is None else float(crop_ratio)
    labels = dataset_files.read_labels(str(labels_file))
    settings = dict(
        model_kind=model_kind,
        img_size=int(img_size),
        num_epochs=int(num_epochs),
        batch_size=int(batch_size),
        lrate=float(lrate),
        num_hidden=int(num_hidden),
        crop_ratio=crop_ratio,
        with_color_distort=bool(with_color_distort),
        augment=bool(augment),
        l2=float(l2),
        seed=int(seed),
        patience=int(patience),
        pattern=pattern,
        distribute=distribute,
        weights=weights,
        labels=labels,
        num_replicas=int(strategy.num_replicas_in_sync),
        trainer_version=TRAINER_VERSION,
    )
    patterns = {
        s: dataset_files.split_pattern(input_topdir, s, pattern) for s in ("train", "valid", "test")
    }
    counts = count_split_records(patterns, log)

    chief = _is_chief(strategy)
    out_dir = str(job_dir) if chief else tempfile.mkdtemp(prefix="pmlv_worker_")
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    if not resume and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    os.makedirs(ckpt_dir, exist_ok=True)

    keras.utils.set_random_seed(seed)
    restore_determinism = _enable_op_determinism() if deterministic else None
    try:
        if training_loop not in ("auto", "fit", "custom"):
            raise ValueError(
                f"training_loop must be 'auto', 'fit' or 'custom', got {training_loop!r}"
            )
        state = _fit(
            strategy,
            settings,
            patterns,
            counts,
            ckpt_dir,
            resume,
            weights,
            verbose,
            log,
            training_loop,
        )
        metrics = _evaluate_and_export(state, settings, patterns, counts, out_dir, export)
    finally:
        if restore_determinism:
            restore_determinism()
        if not chief:
            shutil.rmtree(out_dir, ignore_errors=True)
    metrics["seconds"] = round(time.perf_counter() - start_time, 2)
    if chief:
        safe_io.write_json(os.path.join(out_dir, "metrics.json"), metrics)
        metrics["hypertune"] = report_tuning_metric(
            state["best_val_accuracy"], state["epochs_done"], out_dir
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
    from . import ingest

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


def _fit(
    strategy,
    settings,
    patterns,
    counts,
    ckpt_dir,
    resume,
    weights,
    verbose,
    log,
    training_loop="auto",
) -> dict:
    """Build (or reload for resume) and fit the model; returns the training state."""
    import keras
    import tensorflow as tf

    from . import ingest
    from .model import build_model
    from .preprocess import RandomCropOrCenter  # noqa: F401  (registers it for loading)

    img_size, num_epochs, seed = settings["img_size"], settings["num_epochs"], settings["seed"]
    batch = {s: settings["batch_size"] for s in ("train", "valid")}
    cache = counts["train"] * img_size * img_size * 3 * 4 < CACHE_LIMIT_BYTES
    train_ds = ingest.make_dataset(
        patterns["train"],
        batch["train"],
        img_size,
        training=True,
        shuffle_seed=seed,
        cache=cache,
        validate=False,
    )
    valid_ds = ingest.make_dataset(
        patterns["valid"], batch["valid"], img_size, training=False, cache=cache, validate=False
    )
    steps = {s: math.ceil(counts[s] / batch[s]) for s in batch}
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

    state = load_state(os.path.dirname(ckpt_dir)) if resume else None
    last_path = os.path.join(ckpt_dir, "last.keras")
    with strategy.scope():
        if state and os.path.exists(last_path):
            changed = {
                k: (state["settings"].get(k), settings[k])
                for k in RESUME_KEYS
                if state["settings"].get(k) != settings[k]
            }
            if changed:
                raise ValueError(
                    f"cannot resume from {ckpt_dir}: settings differ (saved, now): {changed}"
                )
            model = keras.models.load_model(last_path)
            log(
                f"resuming after epoch {state['epochs_done']} (best so far: epoch "
                f"{state['best_epoch']}, val_accuracy {state['best_val_accuracy']:.4f})"
            )
        else:
            if resume:
                log(f"nothing to resume in {ckpt_dir}: starting from epoch 0")
            state = None
            model = build_model(
                settings["model_kind"],
                num_classes=len(settings["labels"]),
                img_size=img_size,
                num_hidden=settings["num_hidden"],
                crop_ratio=settings["crop_ratio"],
                with_color_distort=settings["with_color_distort"],
                weights=weights,
                lrate=settings["lrate"],
                seed=seed,
                l2=settings["l2"],
                augment=settings["augment"],
                decay_steps=steps["train"] * num_epochs,
            )
    state = state or dict(
        epochs_done=0,
        best_epoch=None,
        best_val_accuracy=None,
        wait=0,
        stopped_early=False,
        history={},
    )
    state["settings"] = settings

    start = time.perf_counter()
    if state["stopped_early"] or state["epochs_done"] >= num_epochs:
        log(f"training already finished at epoch {state['epochs_done']}")
    else:
        callback = _checkpoint_callback()(ckpt_dir, settings["patience"], state, log=log)
        several = strategy.num_replicas_in_sync > 1 or getattr(strategy, "cluster_resolver", None)
        if training_loop == "custom" or (training_loop == "auto" and several):
            fit_distributed(
                model,
                strategy,
                train_ds,
                valid_ds,
                num_epochs,
                state["epochs_done"],
                callback,
                log if verbose else None,
                batch_size=batch["train"],
            )
        else:
            model.fit(
                train_ds,
                validation_data=valid_ds,
                epochs=num_epochs,
                initial_epoch=state["epochs_done"],
                callbacks=[callback],
                verbose=verbose,
                shuffle=False,
            )  # the dataset shuffles itself
    state["fit_seconds"] = round(time.perf_counter() - start, 2)
    return state


def fit_distributed(
    model,
    strategy,
    train_ds,
    valid_ds,
    num_epochs: int,
    initial_epoch: int,
    callback,
    log=print,
    batch_size: int | None = None,
) -> dict:
    """``model.fit`` for several replicas (Mirrored, MultiWorkerMirrored, TPU), as a custom loop.

    Keras 3.15's ``fit`` under a strategy first iterates the dataset once more to peek at a
    batch: that advances the reshuffling (the replicas then see other batches than a
    one-device run), and it fails when that batch splits unevenly over replicas. Under
    MultiWorkerMirroredStrategy ``fit`` fails outright (keras-team/keras#20585).
    Here each replica's loss is its examples' share of the mean over the whole global batch
    and the optimizer sums the gradients over replicas, so every step is the one-device step
    on the same global batch. The callback gets ``on_epoch_end`` with ``fit``'s logs
    (accuracy, loss, val_accuracy, val_loss) and can stop training.
    batch_size: if given, a last, shorter training batch is skipped (when it split unevenly
    over replicas, the collective ops of synchronised batch norm failed, TF 2.21).
    Returns the history.
    """
    import keras
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    callback.set_model(model)

    def sums(labels, probs):
        per_example = loss_fn(labels, probs)
        correct = tf.cast(tf.equal(tf.argmax(probs, axis=1), tf.cast(labels, tf.int64)), tf.float32)
        return (
            tf.reduce_sum(per_example),
            tf.reduce_sum(correct),
            tf.cast(tf.shape(labels)[0], tf.float32),
            None,
        )

    def train_replica(images, labels):
        n_global = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(labels)[0], tf.float32)
        )
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss_sum, correct, n, _ = sums(labels, probs)
            # this replica's share of the mean over the whole global batch (also when the
            # last batch splits unevenly), plus its share of the regularisation loss
            scaled = loss_sum / n_global
            if model.losses:
                scaled += tf.add_n(model.losses) / replicas
        grads = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss_sum, correct, n

    def eval_replica(images, labels):
        loss_sum, correct, n, _ = sums(labels, model(images, training=False))
        return loss_sum, correct, n

    def reduced(fn):
        @tf.function
        def step(batch):
            per_replica = strategy.run(fn, args=batch)
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in per_replica]

        return step

    train_step, eval_step = reduced(train_replica), reduced(eval_replica)
    if batch_size:  # full batches only, with the batch size in the static shape
        train_ds = train_ds.filter(lambda images, labels: tf.shape(labels)[0] == batch_size).map(
            lambda images, labels: (
                tf.ensure_shape(images, [batch_size, *images.shape[1:]]),
                tf.ensure_shape(labels, [batch_size]),
            )
        )
    dist_train = strategy.experimental_distribute_dataset(train_ds)
    dist_valid = strategy.experimental_distribute_dataset(valid_ds)
    history: dict = {}
    for epoch in range(initial_epoch, num_epochs):
        start = time.perf_counter()
        logs = {}
        for prefix, dataset, step in (
            ("", dist_train, train_step),
            ("val_", dist_valid, eval_step),
        ):
            totals = np.zeros(3)
            for batch in dataset:
                totals += [float(v) for v in step(batch)]
            logs[f"{prefix}accuracy"] = totals[1] / totals[2]
            logs[f"{prefix}loss"] = totals[0] / totals[2]
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if log:
            log(
                f"Epoch {epoch + 1}/{num_epochs} - {time.perf_counter() - start:.0f}s - "
                + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            )
        callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    return history


def _evaluate_and_export(state, settings, patterns, counts, out_dir, export) -> dict:
    """Metrics of the BEST checkpoint on every split, the curves plot, and the export."""
    import keras

    from .export import export_saved_model
    from .model import count_params

    img_size, labels = settings["img_size"], settings["labels"]
    best = keras.models.load_model(os.path.join(out_dir, "checkpoints", "best.keras"))
    results = {split: evaluate(best, patterns[split], img_size, labels) for split in counts}
    test = results.get("test")
    metrics = {
        "train_accuracy": results["train"]["accuracy"],
        "val_accuracy": results["valid"]["accuracy"],
        "test_accuracy": test["accuracy"] if test else None,
        "test_confusion_matrix": test["confusion_matrix"] if test else None,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epochs_done"],
        "stopped_early": state["stopped_early"],
        "num_images": counts,
        "fit_seconds": state["fit_seconds"],
        "params": count_params(best),
        "settings": settings,
        "history": state["history"],
        "labels": labels,
    }
    plot_training_curves(
        state["history"],
        state["best_epoch"],
        os.path.join(out_dir, "training_curves.png"),
        title=f"{settings['model_kind']}, {img_size}px, best epoch {state['best_epoch']}",
    )
    if export:
        export_saved_model(
            best,
            os.path.join(out_dir, "export"),
            labels,
            img_size,
            settings["model_kind"],
            extra_info={
                "best_epoch": state["best_epoch"],
                "val_accuracy": metrics["val_accuracy"],
                "test_accuracy": metrics["test_accuracy"],
                "trainer_version": TRAINER_VERSION,
            },
        )
    return metrics


# --------------------------------------------------------------------------------------
# Local hyperparameter search
# --------------------------------------------------------------------------------------


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
    num_trials: int = 4,
    search_space: dict | None = None,
    seed: int = 42,
    log=print,
    **fixed,
) -> list[dict]:
    """Random search over ``search_space`` (default: the book's), one trainer run per trial
    in ``<job_dir>/trial_<k>`` (no export); trials ranked by val_accuracy (never by test).

    ``fixed`` holds the trainer arguments shared by all trials (num_epochs, img_size, ...).
    Returns one dict per trial: the sampled values, val/test accuracy, best epoch, seconds.
    """
    rng = np.random.default_rng(seed)
    space = search_space or BOOK_SEARCH_SPACE
    trials = []
    for k in range(num_trials):
        params = sample_hparams(space, rng)
        log(f"trial {k}: {params}")
        m = train_and_export(
            job_dir=os.path.join(str(job_dir), f"trial_{k}"),
            input_topdir=input_topdir,
            labels_file=labels_file,
            export=False,
            seed=seed,
            verbose=0,
            log=lambda *a, **kw: None,
            **{**fixed, **params},
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
