"""How the epochs run: Keras ``fit`` on one replica, :func:`fit_distributed` on several.

:func:`fit_distributed` is the custom multi-replica loop (MirroredStrategy,
MultiWorkerMirroredStrategy, TPUStrategy); :func:`run_epochs` picks one of the two for the
trainer, and :func:`deterministic_ops` turns TensorFlow's op determinism on for a run.
"""

from __future__ import annotations

import contextlib
import time

import keras
import numpy as np
import tensorflow as tf

from .config import TrainConfig

try:  # TF's private switch: TF 2.21 has no public disable_op_determinism
    from tensorflow.python.framework import config as tf_framework_config
except ImportError:
    tf_framework_config = None


@contextlib.contextmanager
def deterministic_ops(enabled: bool = True):
    """TF op determinism (process-wide) inside the block; switched back off afterwards if it
    was off before (through TF's private switch, when that exists)."""
    if not enabled:
        yield
        return
    try:
        was_on = tf_framework_config.is_op_determinism_enabled()
        switch_off = tf_framework_config.disable_op_determinism
    except AttributeError:  # also when the private module is gone (None)
        was_on, switch_off = True, None
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_on and switch_off is not None:
            switch_off()


def several_replicas(strategy) -> bool:
    """More than one replica, or a multi-worker cluster (even of one worker)."""
    return strategy.num_replicas_in_sync > 1 or bool(getattr(strategy, "cluster_resolver", None))


def uses_custom_loop(config: TrainConfig, strategy) -> bool:
    """True for ``training_loop="custom"``, and for "auto" with several replicas (Keras
    ``fit`` with one; see :func:`fit_distributed` why)."""
    loop = config.training_loop
    return loop == "custom" or (loop == "auto" and several_replicas(strategy))


def run_epochs(
    model,
    strategy,
    train_ds,
    valid_ds,
    config: TrainConfig,
    initial_epoch: int,
    callback,
    verbose: int = 2,
    log=print,
) -> None:
    """Epochs ``initial_epoch`` .. ``config.num_epochs`` with ``config.training_loop``
    (:func:`uses_custom_loop`). ``callback``: one Keras callback or a list of them."""
    if uses_custom_loop(config, strategy):
        fit_distributed(
            model,
            strategy,
            train_ds,
            valid_ds,
            config.num_epochs,
            initial_epoch,
            callback,
            log if verbose else None,
            batch_size=config.batch_size,
        )
    else:
        model.fit(
            train_ds,
            validation_data=valid_ds,
            epochs=config.num_epochs,
            initial_epoch=initial_epoch,
            callbacks=callback if isinstance(callback, list) else [callback],
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself
        )


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
    on the same global batch. ``callback`` (one Keras callback or a list) gets
    ``on_train_begin``, ``on_epoch_end`` with ``fit``'s logs (accuracy, loss, val_accuracy,
    val_loss) and ``on_train_end``, and can stop training.
    batch_size: if given, a last, shorter training batch is skipped (when it split unevenly
    over replicas, the collective ops of synchronised batch norm failed, TF 2.21).
    Returns the history.
    """
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    callback = keras.callbacks.CallbackList(
        callback if isinstance(callback, list) else [callback], model=model
    )
    train_step, eval_step = replica_steps(model, strategy)
    if batch_size:
        train_ds = full_batches(train_ds, batch_size)
    passes = (
        ("", strategy.experimental_distribute_dataset(train_ds), train_step),
        ("val_", strategy.experimental_distribute_dataset(valid_ds), eval_step),
    )
    history: dict = {}
    callback.on_train_begin()
    for epoch in range(initial_epoch, num_epochs):
        start = time.perf_counter()
        logs = epoch_logs(passes)
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
    callback.on_train_end()
    return history


def epoch_logs(passes) -> dict:
    """One epoch: every ``(prefix, distributed dataset, step)`` pass in turn; returns
    ``{prefix + "accuracy": ..., prefix + "loss": ...}`` (means over the examples)."""
    logs = {}
    for prefix, dataset, step in passes:
        totals = np.zeros(3)  # loss sum, correct, examples
        for batch in dataset:
            totals += [float(v) for v in step(batch)]
        logs[f"{prefix}accuracy"] = totals[1] / totals[2]
        logs[f"{prefix}loss"] = totals[0] / totals[2]
    return logs


def full_batches(dataset, batch_size: int):
    """Only the batches of exactly ``batch_size``, with the batch size in the static shape."""
    return dataset.filter(lambda images, labels: tf.shape(labels)[0] == batch_size).map(
        lambda images, labels: (
            tf.ensure_shape(images, [batch_size, *images.shape[1:]]),
            tf.ensure_shape(labels, [batch_size]),
        )
    )


def replica_steps(model, strategy):
    """``(train_step, eval_step)``: tf.functions taking a distributed batch and returning
    the loss sum, the number correct and the number of examples, summed over replicas."""
    replicas = strategy.num_replicas_in_sync
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)

    def sums(labels, probs):
        correct = tf.equal(tf.argmax(probs, axis=1), tf.cast(labels, tf.int64))
        return (
            tf.reduce_sum(loss_fn(labels, probs)),
            tf.reduce_sum(tf.cast(correct, tf.float32)),
            tf.cast(tf.shape(labels)[0], tf.float32),
        )

    def train_replica(images, labels):
        n_global = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(labels)[0], tf.float32)
        )
        with tf.GradientTape() as tape:
            loss_sum, correct, n = sums(labels, model(images, training=True))
            # this replica's share of the mean over the whole global batch (also when the
            # last batch splits unevenly), plus its share of the regularisation loss
            scaled = loss_sum / n_global
            if model.losses:
                scaled += tf.add_n(model.losses) / replicas
        grads = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss_sum, correct, n

    def eval_replica(images, labels):
        return sums(labels, model(images, training=False))

    def reduced(fn):
        @tf.function
        def step(batch):
            per_replica = strategy.run(fn, args=batch)
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in per_replica]

        return step

    return reduced(train_replica), reduced(eval_replica)
