"""TensorBoard logs of a trainer run, reading them back, and a local TensorBoard server.

``<job_dir>/tensorboard/`` holds, per run folder (TensorBoard's "runs"):

    train/        epoch_loss, epoch_accuracy, epoch_learning_rate; the Keras model graph
                  (``fit`` only); input_images (the first training records, as the model
                  gets them) and augmented_views (the same through the training-time layers)
    validation/   epoch_loss, epoch_accuracy; confusion_matrix (an image per epoch)

With Keras ``fit`` the scalars and the graph come from ``keras.callbacks.TensorBoard``; the
custom multi-replica loop (:func:`pmlv_utils.training.fit_distributed`) writes the same
scalar tags itself (:class:`EpochScalars`). :func:`read_scalars` reads them back (no
``tensorboard`` package needed); :func:`start_tensorboard` runs
``tensorboard --logdir ... --host 127.0.0.1 --port P`` (needs the ``tensorboard`` package).
"""

from __future__ import annotations

import glob
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from ..plots import plot_confusion_matrix
from ..preprocess import augmentation_examples

TENSORBOARD_DIR = "tensorboard"
TRAIN_RUN, VALID_RUN = "train", "validation"


def tensorboard_dir(job_dir: str | os.PathLike) -> str:
    """``<job_dir>/tensorboard``: the folder to give ``tensorboard --logdir``."""
    return os.path.join(str(job_dir), TENSORBOARD_DIR)


def figure_to_image(fig) -> np.ndarray:
    """A matplotlib figure as a uint8 ``[1, H, W, 4]`` batch for ``tf.summary.image``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return tf.image.decode_png(buf.getvalue(), channels=4)[None].numpy()


def confusion_matrix_image(confusion, labels, title: str) -> np.ndarray:
    """The confusion matrix plot (rows: true, columns: predicted) as an image batch."""
    fig = Figure(figsize=(1.0 + 0.9 * len(labels), 0.8 + 0.8 * len(labels)))
    plot_confusion_matrix(confusion, labels, title=title, ax=fig.subplots())
    return figure_to_image(fig)


def confusion_matrix(model, dataset, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` of ``model`` (inference mode) over ``dataset``."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for images, labels in dataset:
        pred = np.argmax(model(images, training=False), axis=1)
        np.add.at(cm, (np.asarray(labels), pred), 1)
    return cm


class EpochImages(keras.callbacks.Callback):
    """Writes a few input images (once, at the start) and the validation confusion matrix
    (every epoch) to ``<log_dir>/train`` and ``<log_dir>/validation``.

    sample_images: preprocessed images ``[N, H, W, 3]`` (e.g. the first training records);
    augment: the augmentation settings (``augmentation_examples`` keywords) for the
    augmented views, drawn by separate layers (the model's own random draws are untouched).
    """

    def __init__(self, log_dir, sample_images, valid_ds, labels, augment: dict | None = None):
        super().__init__()
        self.log_dir, self.valid_ds, self.labels = str(log_dir), valid_ds, list(labels)
        self.sample_images, self.augment = np.asarray(sample_images), augment
        self.writers = {}

    def writer(self, run: str):
        if run not in self.writers:
            self.writers[run] = tf.summary.create_file_writer(os.path.join(self.log_dir, run))
        return self.writers[run]

    def on_train_begin(self, logs=None):
        images = self.sample_images
        with self.writer(TRAIN_RUN).as_default():
            tf.summary.image("input_images", images, step=0, max_outputs=len(images))
            if self.augment is not None and len(images):
                views, _ = augmentation_examples(images[0], count=len(images), **self.augment)
                tf.summary.image("augmented_views", views, step=0, max_outputs=len(views))
        self.writer(TRAIN_RUN).flush()

    def on_epoch_end(self, epoch, logs=None):
        cm = confusion_matrix(self.model, self.valid_ds, len(self.labels))
        accuracy = np.trace(cm) / max(cm.sum(), 1)
        image = confusion_matrix_image(
            cm, self.labels, f"validation, epoch {epoch + 1}: accuracy {accuracy:.3f}"
        )
        with self.writer(VALID_RUN).as_default():
            tf.summary.image("confusion_matrix", image, step=epoch)
        self.writer(VALID_RUN).flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


class EpochScalars(EpochImages):
    """:class:`EpochImages` plus the epoch scalars under the tags Keras' TensorBoard callback
    uses (``epoch_loss``, ``epoch_accuracy``, ``epoch_learning_rate``), for the custom loop."""

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        for run, keep in ((TRAIN_RUN, lambda k: not k.startswith("val_")), (VALID_RUN, None)):
            items = {
                (k if keep else k[4:]): v
                for k, v in logs.items()
                if (keep(k) if keep else k.startswith("val_"))
            }
            with self.writer(run).as_default():
                for name, value in items.items():
                    tf.summary.scalar(f"epoch_{name}", float(value), step=epoch)
        super().on_epoch_end(epoch, logs)


def callbacks(
    job_dir, custom_loop: bool, sample_images, valid_ds, labels, augment: dict | None = None
) -> list:
    """The TensorBoard callbacks of a run: Keras' own (scalars + graph) and
    :class:`EpochImages` for ``fit``; :class:`EpochScalars` for the custom loop."""
    log_dir = tensorboard_dir(job_dir)
    if custom_loop:
        return [EpochScalars(log_dir, sample_images, valid_ds, labels, augment)]
    keras_tb = keras.callbacks.TensorBoard(
        log_dir, write_graph=True, update_freq="epoch", profile_batch=0
    )
    return [keras_tb, EpochImages(log_dir, sample_images, valid_ds, labels, augment)]


def event_files(log_dir: str | os.PathLike) -> list[str]:
    """Every ``events.out.tfevents.*`` file under ``log_dir``."""
    return sorted(
        glob.glob(os.path.join(str(log_dir), "**", "events.out.tfevents.*"), recursive=True)
    )


def read_scalars(log_dir: str | os.PathLike) -> dict:
    """``{run: {tag: [(step, value), ...]}}`` of the scalars under ``log_dir`` (run: the
    folder of the event file relative to ``log_dir``), read with TensorFlow only."""
    out: dict = {}
    for path in event_files(log_dir):
        run = os.path.relpath(os.path.dirname(path), str(log_dir))
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = float(value.simple_value)
                elif value.metadata.plugin_data.plugin_name == "scalars":
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    continue
                out.setdefault(run, {}).setdefault(value.tag, []).append((event.step, number))
    return out


def read_tags(log_dir: str | os.PathLike) -> dict:
    """``{run: {tag: plugin name}}`` of everything under ``log_dir`` (scalars, images, graph)."""
    out: dict = {}
    for path in event_files(log_dir):
        run = os.path.relpath(os.path.dirname(path), str(log_dir))
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.graph_def:
                out.setdefault(run, {})["__graph__"] = "graph"
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name or "scalars"
                out.setdefault(run, {})[value.tag] = plugin
    return out


def tensorboard_command() -> list[str]:
    """How to run TensorBoard here: the ``tensorboard`` script beside this Python, on the
    PATH, or ``python -m tensorboard.main``; FileNotFoundError when it is not installed."""
    here = shutil.which("tensorboard", path=os.path.dirname(sys.executable))
    if here:
        return [here]
    if importlib.util.find_spec("tensorboard") is not None:
        return [sys.executable, "-m", "tensorboard.main"]
    on_path = shutil.which("tensorboard")
    if on_path:
        return [on_path]
    raise FileNotFoundError(
        "TensorBoard is not installed (TensorFlow 2.21 no longer brings it): "
        "pip install tensorboard"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class TensorBoardServer:
    """A running ``tensorboard`` process; :meth:`stop` ends it (also as a context manager)."""

    process: subprocess.Popen
    url: str
    log_path: str

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_tensorboard(
    logdir: str | os.PathLike,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 90.0,
    command: list[str] | None = None,
) -> TensorBoardServer:
    """Start ``tensorboard --logdir LOGDIR --host HOST --port PORT`` and wait until it
    answers; its output goes to ``<logdir>/../tensorboard_server.log``."""
    port = port or free_port(host)
    argv = (command or tensorboard_command()) + [
        "--logdir", str(logdir), "--host", host, "--port", str(port), "--reload_interval", "2",
    ]  # fmt: skip
    log_path = os.path.join(os.path.dirname(os.path.abspath(str(logdir))), "tensorboard_server.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    server = TensorBoardServer(process, f"http://{host}:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path) as f:
                raise RuntimeError(f"tensorboard exited ({process.returncode}): {f.read()[-2000:]}")
        try:
            with urllib.request.urlopen(server.url + "/data/runs", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise TimeoutError(f"tensorboard did not answer at {server.url} within {timeout:.0f} s")
