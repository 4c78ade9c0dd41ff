"""What a run is judged by: accuracy and confusion matrix, the curves plot, the artifacts list
and the hyperparameter-tuning metric reported to Vertex."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from .. import export, ingest, safe_io

try:
    import hypertune  # cloudml-hypertune, present in Vertex training containers
except ImportError:
    hypertune = None


def evaluate(
    model, pattern: str, img_size: int, labels: list[str] | None = None, batch_size: int = 64
) -> dict:
    """Accuracy and confusion matrix of ``model`` on the TFRecords matching ``pattern``.

    model: a Keras model, or the folder of an exported SavedModel (its ``xai_model``
    signature is called on the same preprocessed images).
    Returns ``{"accuracy", "n", "confusion_matrix" (rows: true, cols: predicted), "labels"}``.
    """
    if isinstance(model, (str, os.PathLike)):
        info = export.read_model_info(model)
        labels = labels or info["labels"]
        signature = export.load_signatures(model)["xai_model"]
        predict = lambda x: signature(input_images=x)["probability"].numpy()
    else:
        predict = lambda x: model(x, training=False).numpy()
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
    if hypertune is None:
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
