"""pmlv_utils.error_review: confusion matrix, worst FPs/FNs, mislabelled images by loss.

The data: a tiny colour-coded 5-class set (one hue per class) in the generator's layout
(``flower_photos/<label>/<name>.jpg`` + ``image_info.csv``), with planted label noise: a few
images drawn with one class's hue are filed under another label. The model is built by hand
(the per-channel maximum of the image, nearest class colour), so it is right about what
each image shows and the planted images have the highest losses.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
Image = pytest.importorskip("PIL.Image")
plt = pytest.importorskip("matplotlib.pyplot")

from pmlv_utils import error_review, export, tfrecords  # noqa: E402

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
HUES = np.array([[230, 230, 230], [230, 205, 25], [205, 25, 50], [230, 128, 0], [150, 25, 150]])
SIZE = 24
PER_CLASS = 12
# (listed class, index) -> the class actually drawn
PLANTED = {("daisy", 3): "roses", ("roses", 5): "tulips", ("tulips", 7): "dandelion"}


def make_noisy_set(root) -> dict:
    """Images + image_info.csv + one GZIP shard of every image; returns paths."""
    rng = np.random.default_rng(0)
    rows, records = [], []
    for k, label in enumerate(CLASSES):
        os.makedirs(root / "flower_photos" / label, exist_ok=True)
        for i in range(PER_CLASS):
            drawn = PLANTED.get((label, i), label)
            img = rng.uniform(0, 60, (30, 30, 3))
            top, left = rng.integers(0, 12, 2)
            img[top : top + 15, left : left + 15] = HUES[CLASSES.index(drawn)] + rng.normal(0, 6, 3)
            rel = f"flower_photos/{label}/{label}_{i:04d}.jpg"
            Image.fromarray(np.clip(img, 0, 255).astype("uint8")).save(root / rel, quality=95)
            rows.append(dict(image=rel, label=label, true_label=drawn, label_noise=drawn != label))
            records.append((str(root / rel), label, k))
    pd.DataFrame(rows).to_csv(root / "image_info.csv", index=False)
    shard = root / "train-00000-of-00001.gz"
    with tf.io.TFRecordWriter(str(shard), tf.io.TFRecordOptions(compression_type="GZIP")) as w:
        for path, label, k in records:
            with open(path, "rb") as f:
                w.write(
                    tfrecords.make_example(
                        f.read(), (30, 30, 3), label, k, path
                    ).SerializeToString()
                )
    return {"pattern": str(root / "train-*"), "info": root / "image_info.csv"}


def nearest_colour_model(centres, temperature: float = 30.0) -> keras.Model:
    """softmax(-T * |max colour - centre|^2): a Dense layer on the channel maxima."""
    inputs = keras.Input((SIZE, SIZE, 3), name="input_images")
    x = keras.layers.GlobalMaxPooling2D()(inputs)
    dense = keras.layers.Dense(len(CLASSES), activation="softmax", name="flower_prob")
    outputs = dense(x)
    dense.set_weights([2 * temperature * centres.T, -temperature * (centres**2).sum(axis=1)])
    return keras.Model(inputs, outputs)


def drawn_colour_centres(root) -> np.ndarray:
    """The mean channel maxima of the images that show each class (from the generator's
    record): the centres of a model that is right about what every image shows."""
    from pmlv_utils import preprocess

    info = pd.read_csv(root / "image_info.csv")
    maxima = np.stack(
        [
            preprocess.read_and_preprocess(str(root / rel), SIZE, SIZE).numpy().max(axis=(0, 1))
            for rel in info["image"]
        ]
    )
    return np.stack([maxima[(info["true_label"] == c).to_numpy()].mean(axis=0) for c in CLASSES])


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    root = tmp_path_factory.mktemp("noisy")
    data = make_noisy_set(root)
    model = nearest_colour_model(drawn_colour_centres(root))
    preds = error_review.predict_records(model, data["pattern"], SIZE, CLASSES)
    return data, model, preds


def test_prediction_table_and_confusion_matrix(noisy):
    _, _, preds = noisy
    assert len(preds) == 5 * PER_CLASS
    assert {"path", "label", "pred", "prob_pred", "loss", "p_daisy"} <= set(preds.columns)
    np.testing.assert_allclose(preds[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, rtol=1e-5)
    cm = error_review.confusion_matrix(preds)
    assert cm.sum() == len(preds) and cm.shape == (5, 5)
    # the model sees what is drawn: the only errors are the planted labels
    assert int(len(preds) - np.trace(cm)) == len(PLANTED)
    assert cm[CLASSES.index("daisy"), CLASSES.index("roses")] == 1
    counts = error_review.error_counts(preds)
    assert (
        counts.loc["roses", "false_positives"] == 1 and counts.loc["daisy", "false_negatives"] == 1
    )
    fig = error_review.plot_confusion(preds)
    assert fig.axes
    plt.close(fig)


def test_worst_false_positives_and_negatives(noisy):
    _, _, preds = noisy
    fp = error_review.worst_errors(preds, "roses", "false_positive")
    assert list(fp["label"]) == ["daisy"] and list(fp["pred"]) == ["roses"]
    fn = error_review.worst_errors(preds, "roses", "false_negative")
    assert list(fn["pred"]) == ["tulips"]
    assert error_review.worst_errors(preds, "sunflowers", "false_negative").empty
    with pytest.raises(ValueError, match="kind"):
        error_review.worst_errors(preds, "roses", "wrong")
    for kind in error_review.KINDS:
        fig = error_review.error_gallery(preds, kind, per_class=3)
        assert len(fig.axes) == 5 * 3
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert any("daisy -> roses" in t for t in titles)
        plt.close(fig)


def test_loss_ranking_finds_the_planted_labels(noisy):
    data, _, preds = noisy
    info = error_review.read_label_noise(data["info"])
    assert int(info["label_noise"].sum()) == len(PLANTED)
    scores = error_review.mislabel_scores(preds, info)
    assert scores["k"] == scores["noisy"] == len(PLANTED)
    assert scores["precision_at_k"] == 1.0 and scores["recall_at_k"] == 1.0
    assert scores["random_precision"] == pytest.approx(len(PLANTED) / len(preds))
    assert scores["lift"] > 10
    top = scores["top"]
    assert set(top["true_label"]) == set(PLANTED.values()) and top["label_noise"].all()
    wider = error_review.mislabel_scores(preds, info, k=6)
    assert wider["found"] == 3 and wider["precision_at_k"] == 0.5


def test_precision_at_k_table_and_the_recorded_column(noisy, tmp_path):
    data, _, preds = noisy
    info = error_review.read_label_noise(data["info"])
    table = error_review.precision_at_k(preds, info, ks=(1, 6, 0))
    assert list(table.index) == [1, 3, 6]  # k = 3: the number of noisy labels
    assert list(table["found"]) == [1, 3, 3]
    assert list(table["precision_at_k"]) == [1.0, 1.0, 0.5]
    assert error_review.label_noise_recorded(data["info"])
    old = tmp_path / "image_info.csv"
    pd.read_csv(data["info"]).drop(columns=["true_label", "label_noise"]).to_csv(old, index=False)
    assert not error_review.label_noise_recorded(old)
    assert not error_review.label_noise_recorded(tmp_path / "missing.csv")


def test_join_needs_every_record_in_the_info(noisy):
    data, _, preds = noisy
    info = error_review.read_label_noise(data["info"]).iloc[1:]
    with pytest.raises(ValueError, match="1 of 60 records"):
        error_review.join_on_path(preds, info)


def test_exported_model_gives_the_same_predictions(noisy, tmp_path):
    data, model, preds = noisy
    folder = export.export_saved_model(model, str(tmp_path / "export"), CLASSES, SIZE)
    again = error_review.predict_records(folder, data["pattern"], SIZE, CLASSES)
    np.testing.assert_allclose(again["p_roses"], preds["p_roses"], atol=1e-5)
    assert list(again["path"]) == list(preds["path"])
