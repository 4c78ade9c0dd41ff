"""Error review, the book's no-code evaluation step: where the model is wrong, and which
training labels are wrong.

    preds = error_review.predict_records(model, "tfrecords/test-*", img_size, labels)
    error_review.plot_confusion(preds)
    error_review.error_gallery(preds, "false_positive")      # per class: worst FPs
    train = error_review.predict_records(model, "tfrecords/train-*", img_size, labels)
    error_review.mislabel_scores(train, error_review.read_label_noise("image_info.csv"))

:func:`predict_records` gives one row per record (path, listed label, prediction, each
class's probability, the per-example loss). A false positive of class *c* is an image
predicted *c* that is listed as another class (worst: highest probability of *c*); a false
negative of *c* is an image listed *c* and predicted otherwise (worst: lowest probability of
*c*). Mislabelled training images are looked for by ranking the training records by loss
(the listed label's cross-entropy under the trained model): :func:`mislabel_scores` compares
the top *k* with the generator's record (``image_info.csv``: ``label_noise`` /
``true_label``), joined on the image path the TFRecords hold.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf

from . import export, ingest, preprocess, tfrecords
from .plots import load_image_array, plot_confusion_matrix

KINDS = ("false_positive", "false_negative")


def _predict_fn(model):
    """images -> probabilities, for a Keras model or an exported SavedModel folder."""
    if isinstance(model, (str, os.PathLike)):
        signature = export.load_signatures(str(model))["xai_model"]
        return lambda x: signature(input_images=x)["probability"].numpy()
    return lambda x: np.asarray(model(x, training=False))


def predict_records(
    model, pattern: str, img_size: int, labels: list[str], batch_size: int = 64
) -> pd.DataFrame:
    """One row per record of the TFRecords matching ``pattern`` (in file order):
    ``path, label_int, label, pred_int, pred, prob_pred, prob_label, loss, correct`` and
    ``p_<class>`` for each class; ``df.attrs["image_bytes"]`` holds the encoded images.

    model: a Keras model or the folder of an exported SavedModel (its ``xai_model``).
    loss: ``-log p(listed label)``, the per-example cross-entropy.
    """
    predict = _predict_fn(model)
    files = ingest.list_shards(pattern)
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").map(tfrecords.parse_example)

    def prepare(example):
        image = preprocess.preprocess_image(example["image"], img_size, img_size)
        return image, example["label_int"], example["path"], example["image"]

    paths, label_ints, probs, images = [], [], [], []
    for batch in ds.map(prepare).batch(batch_size):
        probs.append(predict(batch[0]))
        label_ints.append(batch[1].numpy())
        paths += [p.decode() for p in batch[2].numpy()]
        images += list(batch[3].numpy())
    probs, label_ints = np.concatenate(probs), np.concatenate(label_ints).astype(int)
    return prediction_table(paths, label_ints, probs, labels, images)


def prediction_table(paths, label_ints, probs, labels, image_bytes=None) -> pd.DataFrame:
    """The table of :func:`predict_records` from arrays (probabilities ``[N, K]``)."""
    probs = np.asarray(probs, dtype=float)
    label_ints = np.asarray(label_ints, dtype=int)
    pred = probs.argmax(axis=1)
    rows = np.arange(len(probs))
    df = pd.DataFrame(
        {
            "path": list(paths),
            "label_int": label_ints,
            "label": [labels[i] for i in label_ints],
            "pred_int": pred,
            "pred": [labels[i] for i in pred],
            "prob_pred": probs[rows, pred],
            "prob_label": probs[rows, label_ints],
            "loss": -np.log(np.clip(probs[rows, label_ints], 1e-12, 1.0)),
            "correct": pred == label_ints,
        }
    )
    for k, name in enumerate(labels):
        df[f"p_{name}"] = probs[:, k]
    df.attrs["labels"] = list(labels)
    df.attrs["image_bytes"] = list(image_bytes) if image_bytes is not None else None
    return df


def confusion_matrix(preds: pd.DataFrame) -> np.ndarray:
    """Counts ``[listed label, predicted]`` of a prediction table."""
    k = len(preds.attrs["labels"])
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (preds["label_int"].to_numpy(), preds["pred_int"].to_numpy()), 1)
    return cm


def plot_confusion(preds: pd.DataFrame, normalize: bool = False, title: str | None = None):
    """The confusion matrix of a prediction table (rows: listed label; columns: predicted)."""
    accuracy = float(preds["correct"].mean()) if len(preds) else float("nan")
    return plot_confusion_matrix(
        confusion_matrix(preds),
        preds.attrs["labels"],
        title=title or f"{len(preds)} images, accuracy {accuracy:.3f}",
        normalize=normalize,
    )


def worst_errors(preds: pd.DataFrame, label: str, kind: str, n: int = 5) -> pd.DataFrame:
    """The ``n`` worst false positives or false negatives of class ``label``: FPs (predicted
    ``label``, listed otherwise) by the highest probability of ``label``; FNs (listed
    ``label``, predicted otherwise) by the lowest."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if label not in preds.attrs["labels"]:
        raise ValueError(f"{label!r} is not one of the classes {preds.attrs['labels']}")
    column = f"p_{label}"
    if kind == "false_positive":
        rows = preds[(preds["pred"] == label) & (preds["label"] != label)]
        return rows.sort_values(column, ascending=False).head(n)
    rows = preds[(preds["label"] == label) & (preds["pred"] != label)]
    return rows.sort_values(column, ascending=True).head(n)


def error_counts(preds: pd.DataFrame) -> pd.DataFrame:
    """Per class: images listed, false positives, false negatives, precision, recall."""
    cm = confusion_matrix(preds)
    tp = np.diag(cm)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    return pd.DataFrame(
        {
            "images": cm.sum(axis=1),
            "false_positives": fp,
            "false_negatives": fn,
            "precision": np.round(tp / np.maximum(tp + fp, 1), 3),
            "recall": np.round(tp / np.maximum(tp + fn, 1), 3),
        },
        index=pd.Index(preds.attrs["labels"], name="class"),
    )


def _image(preds: pd.DataFrame, index: int):
    images = preds.attrs.get("image_bytes")
    if images is not None:
        return load_image_array(images[index])
    return load_image_array(preds.loc[index, "path"])


def error_gallery(preds: pd.DataFrame, kind: str = "false_positive", per_class: int = 5):
    """A figure: one row per class with its ``per_class`` worst false positives (or
    negatives), each titled with the listed label, the prediction and the probabilities."""
    labels = preds.attrs["labels"]
    fig, axes = plt.subplots(
        len(labels), per_class, figsize=(2.0 * per_class, 2.3 * len(labels)), squeeze=False
    )
    what = "predicted as" if kind == "false_positive" else "listed as"
    for row, label in zip(axes, labels):
        worst = worst_errors(preds, label, kind, per_class)
        for ax in row:
            ax.axis("off")
        row[0].text(
            -0.1, 0.5, f"{what}\n{label}", transform=row[0].transAxes, ha="right", va="center"
        )
        for ax, (i, r) in zip(row, worst.iterrows()):
            ax.imshow(_image(preds, i))
            ax.set_title(
                f"{r['label']} -> {r['pred']}\np({label})={r[f'p_{label}']:.2f}", fontsize=8
            )
        if worst.empty:
            row[0].set_title("none", fontsize=8)
    kind_name = kind.replace("_", " ") + "s"
    fig.suptitle(f"worst {kind_name} per class (listed -> predicted)")
    fig.tight_layout()
    return fig


def label_noise_recorded(image_info_csv: str | os.PathLike) -> bool:
    """Whether ``image_info.csv`` exists and records label noise (a ``label_noise`` column;
    data made before the generator recorded it has none)."""
    if not os.path.isfile(image_info_csv):
        return False
    return "label_noise" in pd.read_csv(image_info_csv, nrows=0).columns


def read_label_noise(image_info_csv: str | os.PathLike) -> pd.DataFrame:
    """The generator's record: ``image`` (path relative to the data folder), ``label``
    (listed), ``true_label`` (drawn) and ``label_noise`` (listed != drawn)."""
    info = pd.read_csv(image_info_csv)
    if "true_label" not in info.columns:  # older data: no label noise recorded
        info["true_label"] = info["label"]
    if "label_noise" not in info.columns:
        info["label_noise"] = info["true_label"] != info["label"]
    info["label_noise"] = info["label_noise"].astype(str).str.lower().isin(["true", "1"])
    return info[["image", "label", "true_label", "label_noise"]]


def join_on_path(preds: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """``preds`` with the ``true_label`` and ``label_noise`` of ``info``, matched on the
    image path (the record's absolute path ends with the info's relative one)."""
    depth = max(len(PurePosixPath(p).parts) for p in info["image"])
    key = lambda p: "/".join(PurePosixPath(str(p).replace("\\", "/")).parts[-depth:])  # noqa: E731
    lookup = info.assign(_key=info["image"].map(key)).set_index("_key")
    keys = preds["path"].map(key)
    missing = int((~keys.isin(lookup.index)).sum())
    if missing:
        raise ValueError(f"{missing} of {len(preds)} records have no row in image_info.csv")
    out = preds.copy()
    out["true_label"] = lookup.loc[keys, "true_label"].to_numpy()
    out["label_noise"] = lookup.loc[keys, "label_noise"].to_numpy().astype(bool)
    out.attrs = dict(preds.attrs)
    return out


def loss_ranking(preds: pd.DataFrame) -> pd.DataFrame:
    """The records by decreasing loss (the likeliest mislabelled first), with their rank."""
    ranked = preds.sort_values("loss", ascending=False).copy()
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked.attrs = dict(preds.attrs)
    return ranked


def mislabel_scores(preds: pd.DataFrame, info: pd.DataFrame, k: int | None = None) -> dict:
    """How well the loss ranking finds the mislabelled images the generator recorded.

    k: how many of the top-ranked records to check (default: the number of noisy labels).
    Returns ``noisy`` (count), ``n``, ``k``, ``found`` (noisy among the top k),
    ``precision_at_k``, ``recall_at_k``, ``random_precision`` (the noise rate: what a
    random pick of k scores on average), ``lift`` (precision / random) and ``top`` (the top-k
    rows: path, label, true_label, pred, loss, label_noise).
    """
    joined = join_on_path(preds, info)
    noisy, n = int(joined["label_noise"].sum()), len(joined)
    k = int(k if k is not None else max(noisy, 1))
    top = loss_ranking(joined).head(k)
    found = int(top["label_noise"].sum())
    random_rate = noisy / n if n else float("nan")
    precision = found / k if k else float("nan")
    return {
        "noisy": noisy,
        "n": n,
        "k": k,
        "found": found,
        "precision_at_k": precision,
        "recall_at_k": found / noisy if noisy else float("nan"),
        "random_precision": random_rate,
        "lift": precision / random_rate if random_rate else float("nan"),
        "top": top[["rank", "path", "label", "true_label", "pred", "loss", "label_noise"]],
    }


def precision_at_k(preds: pd.DataFrame, info: pd.DataFrame, ks=(10, 20, 50)) -> pd.DataFrame:
    """One row per ``k`` (and one at k = the number of noisy labels): how many of the ``k``
    highest-loss records are mislabelled, precision, recall, the random pick's precision."""
    noisy = int(info["label_noise"].sum())
    ks = sorted({int(k) for k in ks if int(k) > 0} | ({noisy} if noisy else set()))
    columns = ("k", "found", "precision_at_k", "recall_at_k", "random_precision", "lift")
    rows = []
    for k in ks:
        scores = mislabel_scores(preds, info, k)
        rows.append({c: scores[c] for c in columns})
    return pd.DataFrame(rows, columns=columns).set_index("k").round(3)
