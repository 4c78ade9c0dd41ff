"""The colour-histogram baseline: features, fit, evaluation, errors (tiny data, fast)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from pmlv_utils import baseline, synthetic


def _solid(rgb, size=(40, 30)):
    return np.full((size[1], size[0], 3), rgb, dtype=np.uint8)


def test_features_are_normalised_colour_histograms():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    feats = baseline.colour_histogram_features(
        [image, image[:, ::-1], image.astype(np.float32) / 255]
    )
    assert feats.shape == (3, 8 * 4 * 4) and feats.dtype == np.float32
    np.testing.assert_allclose(feats.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(feats[0], feats[1])  # where a colour is does not matter
    assert baseline.colour_histogram_features([image], bins=3).shape == (1, 27)
    red, blue = baseline.colour_histogram_features([_solid((220, 20, 20)), _solid((20, 20, 220))])
    assert red.max() == 1.0 and blue.max() == 1.0 and red.argmax() != blue.argmax()


def test_paths_and_arrays_agree(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(_solid((10, 200, 30))).save(path)
    np.testing.assert_allclose(*baseline.colour_histogram_features([path, _solid((10, 200, 30))]))


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="bins"):
        baseline.colour_histogram_features([_solid((1, 2, 3))], bins=(8, 4))
    with pytest.raises(ValueError, match="RGB image"):
        baseline.colour_histogram_features([np.zeros((5, 5))])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        baseline.colour_histogram_features([broken])
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        baseline.fit_colour_baseline([_solid((1, 2, 3))] * 2, ["a"])
    with pytest.raises(ValueError, match="unknown baseline kind"):
        baseline.fit_colour_baseline(
            [_solid((1, 2, 3)), _solid((200, 2, 3))], ["a", "b"], kind="svm"
        )


@pytest.mark.parametrize("kind", ["logistic", "forest"])
def test_separates_classes_that_differ_by_colour(kind):
    rng = np.random.default_rng(1)
    images = [
        _solid(np.clip(np.array(c) + rng.integers(-15, 15, 3), 0, 255))
        for c in [(200, 30, 30), (30, 30, 200)]
        for _ in range(6)
    ]
    labels = ["red"] * 6 + ["blue"] * 6
    model = baseline.fit_colour_baseline(images, labels, seed=0, kind=kind)
    accuracy, confusion = baseline.evaluate_colour_baseline(model, images, labels)
    assert accuracy == 1.0
    assert model.labels == ["blue", "red"] and confusion.tolist() == [[6, 0], [0, 6]]
    with pytest.raises(ValueError, match="not seen when fitting"):
        baseline.evaluate_colour_baseline(model, images[:1], ["green"])


def test_runs_on_generated_flowers(tmp_path):
    synthetic.generate_dataset(tmp_path, images_per_class=4, seed=1, progress=False)
    rows = list(csv.reader(open(tmp_path / "flower_photos" / "all_data.csv")))
    paths, labels = [r[0] for r in rows], [r[1] for r in rows]
    model = baseline.fit_colour_baseline(paths, labels, seed=0, kind="forest")
    accuracy, confusion = baseline.evaluate_colour_baseline(model, paths, labels)
    assert model.labels == synthetic.CLASSES
    assert confusion.shape == (5, 5) and confusion.sum() == 20
    assert accuracy == np.trace(confusion) / 20
    assert accuracy > 0.8  # a forest remembers its own training images
