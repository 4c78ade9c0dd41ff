"""A colour-only baseline: HSV colour histograms + a scikit-learn classifier.

It answers "how far does colour alone get?". On the synthetic flowers colours overlap
between classes on purpose, so this baseline should stay well below a CNN that can see
shape; if it does not, the data set is too easy.

    model = fit_colour_baseline(train_paths, train_labels, seed=42)
    accuracy, confusion = evaluate_colour_baseline(model, test_paths, test_labels)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURE_SIDE = 64  # images are shrunk to this size before counting colours: fast, same result


def _as_rgb_array(image) -> np.ndarray:
    """A path or an array -> RGB uint8 [H, W, 3] at most FEATURE_SIDE px a side."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as im:
                im = im.convert("RGB")
                im.thumbnail((FEATURE_SIDE, FEATURE_SIDE))
                return np.asarray(im)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read image {image}: {err}") from err
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got an array of shape {arr.shape}")
    if arr.dtype != np.uint8:  # float images in [0, 1]
        arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(arr)
    im.thumbnail((FEATURE_SIDE, FEATURE_SIDE))
    return np.asarray(im)


def colour_histogram_features(
    images: Iterable, bins: int | Sequence[int] = (8, 4, 4)
) -> np.ndarray:
    """One row per image: its joint hue/saturation/value histogram, normalised to sum 1.

    ``images``: paths or RGB arrays (uint8, or float in [0, 1]). ``bins``: bins of hue,
    saturation, value (one int means the same for all three). Returns float32
    [n_images, bins_h * bins_s * bins_v]. Where a pixel is does not matter: only colour.
    """
    bins = (bins,) * 3 if isinstance(bins, int) else tuple(bins)
    if len(bins) != 3 or min(bins) < 1:
        raise ValueError(f"bins must be a positive int or three positive ints, got {bins}")
    rows = []
    for image in images:
        hsv = np.asarray(Image.fromarray(_as_rgb_array(image)).convert("HSV")).reshape(-1, 3)
        hist, _ = np.histogramdd(hsv, bins=bins, range=[(0, 256)] * 3)
        rows.append((hist.ravel() / max(hist.sum(), 1)).astype(np.float32))
    return np.stack(rows) if rows else np.zeros((0, int(np.prod(bins))), np.float32)


@dataclass
class ColourBaseline:
    """A fitted colour baseline: the classifier, its label order and its histogram bins."""

    classifier: object
    labels: list[str]
    bins: tuple[int, int, int]

    def predict(self, images: Iterable) -> list[str]:
        features = _transform(colour_histogram_features(images, self.bins))
        return [self.labels[i] for i in self.classifier.predict(features)]


def _transform(features: np.ndarray) -> np.ndarray:
    # square root of frequencies (Hellinger): rare colours count more than in raw frequencies
    return np.sqrt(features)


def fit_colour_baseline(
    paths: Sequence,
    labels: Sequence[str],
    seed: int = 42,
    bins: int | Sequence[int] = (8, 4, 4),
    kind: str = "logistic",
) -> ColourBaseline:
    """Fit the baseline on images (paths or arrays) and their string labels.

    ``kind``: "logistic" (multinomial logistic regression) or "forest" (random forest).
    """
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} images but {len(labels)} labels")
    label_names = sorted(set(labels))
    if len(label_names) < 2:
        raise ValueError(f"need at least two different labels to fit, got {label_names}")
    bins = (bins,) * 3 if isinstance(bins, int) else tuple(bins)
    if kind == "logistic":
        classifier = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, random_state=seed)
        )
    elif kind == "forest":
        classifier = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)
    else:
        raise ValueError(f"unknown baseline kind {kind!r}; use 'logistic' or 'forest'")
    y = np.array([label_names.index(label) for label in labels])
    classifier.fit(_transform(colour_histogram_features(paths, bins)), y)
    return ColourBaseline(classifier, label_names, bins)


def evaluate_colour_baseline(
    model: ColourBaseline, paths: Sequence, labels: Sequence[str]
) -> tuple[float, np.ndarray]:
    """(accuracy, confusion matrix) on images and their labels.

    The confusion matrix has rows = true label, columns = predicted label, both in
    ``model.labels`` order.
    """
    unknown = sorted(set(labels) - set(model.labels))
    if unknown:
        raise ValueError(f"labels {unknown} were not seen when fitting (known: {model.labels})")
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} images but {len(labels)} labels")
    predicted = model.predict(paths)
    index = {label: i for i, label in enumerate(model.labels)}
    confusion = np.zeros((len(model.labels),) * 2, dtype=np.int64)
    for true, pred in zip(labels, predicted):
        confusion[index[true], index[pred]] += 1
    accuracy = float(np.trace(confusion) / max(confusion.sum(), 1))
    return accuracy, confusion
