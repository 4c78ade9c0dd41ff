"""TensorBoard logs of a trainer run, reading them back, and a local TensorBoard server.

``<job_dir>/tensorboard/`` holds, per run folder (TensorBoard's "runs"):

    train/        epoch_loss, epoch_accuracy, epoch_learning_rate; the model's graph (and
                  Keras' model summary with ``fit``);
                  input_images (the first training records, as the model gets them) and
                  augmented_views (one of them through the training-time layers)
    validation/   epoch_loss, epoch_accuracy; confusion_matrix (an image per epoch)

With Keras ``fit`` and the ``tensorboard`` package installed, the scalars and the model
summary come from ``keras.callbacks.TensorBoard``. Otherwise, and always with the custom
multi-replica loop (:func:`pmlv_utils.training.fit_distributed`), :class:`EpochScalars`
writes the same scalar tags itself. The rest is written with TensorFlow's own summary ops
(``tf.summary.write`` and ``tf.summary.graph``; ``tf.summary.scalar`` and
``tf.summary.image`` need the ``tensorboard`` package, which TensorFlow 2.21 no longer
installs). :func:`read_scalars` reads the logs back with TensorFlow only;
:func:`start_tensorboard` runs ``tensorboard --logdir ... --host 127.0.0.1 --port P``
(that needs the ``tensorboard`` package).
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


def tensorboard_installed() -> bool:
    """Whether the ``tensorboard`` package (the server, and the Keras callback's summary
    ops) can be imported."""
    return importlib.util.find_spec("tensorboard") is not None


def _metadata(plugin: str, data_class: int):
    meta = tf.compat.v1.SummaryMetadata()
    meta.plugin_data.plugin_name = plugin
    meta.data_class = data_class
    return meta


def write_scalar(tag: str, value: float, step: int) -> None:
    """A scalar to the default summary writer (TensorBoard's "scalars" format)."""
    tf.summary.write(
        tag, tf.constant(float(value), tf.float32), step=step, metadata=_metadata("scalars", 1)
    )


def write_png_images(tag: str, pngs: list[bytes], width: int, height: int, step: int) -> None:
    """Encoded PNG images to the default summary writer (TensorBoard's "images" format:
    a string tensor [width, height, png, png, ...])."""
    tensor = tf.constant([str(width).encode(), str(height).encode(), *pngs], tf.string)
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images", 3))


def write_images(tag: str, images, step: int) -> None:
    """Images ``[N, H, W, C]`` (float in [0, 1] or uint8) as PNGs, see :func:`write_png_images`."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    write_png_images(tag, pngs, images.shape[2], images.shape[1], step)


def confusion_matrix_png(confusion, labels, title: str) -> tuple[bytes, int, int]:
    """The confusion matrix plot (rows: true, columns: predicted): (PNG, width, height)."""
    fig = Figure(figsize=(1.0 + 0.9 * len(labels), 0.8 + 0.8 * len(labels)))
    plot_confusion_matrix(confusion, labels, title=title, ax=fig.subplots())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    height, width = tf.io.decode_png(buf.getvalue()).shape[:2]
    return buf.getvalue(), int(width), int(height)


def confusion_matrix(model, dataset, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` of ``model`` (inference mode) over ``dataset``."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for images, labels in dataset:
        pred = np.argmax(model(images, training=False), axis=1)
        np.add.at(cm, (np.asarray(labels), pred), 1)
    return cm


class EpochImages(keras.callbacks.Callback):
    """Writes the model's inference graph and a few input images (once, at the start) and
    the validation confusion matrix (every epoch) to ``<log_dir>/train`` and
    ``<log_dir>/validation``.

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
        spec = tf.TensorSpec([None, *self.model.input_shape[1:]], tf.float32)
        graph = tf.function(lambda x: self.model(x, training=False)).get_concrete_function(spec)
        with self.writer(TRAIN_RUN).as_default():
            tf.summary.graph(graph.graph)  # the model's inference graph (Graphs tab)
            write_images("input_images", images, step=0)
            if self.augment is not None and len(images):
                views, _ = augmentation_examples(images[0], count=len(images), **self.augment)
                write_images("augmented_views", views, step=0)
        self.writer(TRAIN_RUN).flush()

    def on_epoch_end(self, epoch, logs=None):
        cm = confusion_matrix(self.model, self.valid_ds, len(self.labels))
        accuracy = np.trace(cm) / max(cm.sum(), 1)
        png, width, height = confusion_matrix_png(
            cm, self.labels, f"validation, epoch {epoch + 1}: accuracy {accuracy:.3f}"
        )
        with self.writer(VALID_RUN).as_default():
            write_png_images("confusion_matrix", [png], width, height, step=epoch)
        self.writer(VALID_RUN).flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


class EpochScalars(EpochImages):
    """:class:`EpochImages` plus the epoch scalars under the tags Keras' TensorBoard callback
    uses (``epoch_loss``, ``epoch_accuracy``,
    ``epoch_learning_rate``, step = epoch), for the custom loop and when the ``tensorboard``
    package is missing."""

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        if optimizer is not None:
            train["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        valid = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        for run, values in ((TRAIN_RUN, train), (VALID_RUN, valid)):
            with self.writer(run).as_default():
                for name, value in values.items():
                    write_scalar(f"epoch_{name}", value, step=epoch)
        super().on_epoch_end(epoch, logs)


def callbacks(
    job_dir, custom_loop: bool, sample_images, valid_ds, labels, augment: dict | None = None
) -> list:
    """The TensorBoard callbacks of a run: Keras' own (scalars + train graph) and
    :class:`EpochImages` for ``fit`` when the ``tensorboard`` package is installed,
    else :class:`EpochScalars`."""
    log_dir = tensorboard_dir(job_dir)
    if custom_loop or not tensorboard_installed():
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


def _events(path: str):
    """The ``Event`` records of one event file (TensorFlow's ``summary_iterator`` without its
    deprecation warning)."""
    for record in tf.data.TFRecordDataset(path):
        yield tf.compat.v1.Event.FromString(record.numpy())


def read_scalars(log_dir: str | os.PathLike) -> dict:
    """``{run: {tag: [(step, value), ...]}}`` of the scalars under ``log_dir`` (run: the
    folder of the event file relative to ``log_dir``), read with TensorFlow only."""
    out: dict = {}
    for path in event_files(log_dir):
        run = os.path.relpath(os.path.dirname(path), str(log_dir))
        for event in _events(path):
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
        for event in _events(path):
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
    if tensorboard_installed():
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
