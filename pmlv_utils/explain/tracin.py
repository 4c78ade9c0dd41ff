"""TracIn (Pruthi et al., 2020): which training images made a prediction, from the checkpoints.

TracIn-CP scores the influence of a training example z on a test example z' as the sum over
saved checkpoints of the dot products of their loss gradients, Σ_i η_i ∇ℓ(w_i, z)·∇ℓ(w_i, z').
Restricted to the last dense layer (logits = h·W + b, softmax, cross-entropy) the gradient has a
closed form: ∇_W ℓ = h ⊗ (p − y) and ∇_b ℓ = p − y (h: the layer's input, p: the probabilities,
y: the one-hot label), so the dot product of two examples' gradients is
(h·h' + 1)·((p − y)·(p' − y')). No GradientTape, no per-example backward pass: CPU-feasible
for a whole training set.

- *proponents* of a test prediction: training images with the largest positive influence (they
  pushed the model towards it); *opponents*: the most negative ones;
- *self-influence* ∇ℓ(z)·∇ℓ(z) of each training image: large for the ones the model found hard
  to fit, which is where mislabelled images end up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np


@dataclass
class LastLayerGradients:
    """Per example, at one checkpoint: the last layer's input h [N, D] and p - y [N, C]."""

    inputs: np.ndarray
    residuals: np.ndarray


def last_layer_gradients(
    model: keras.Model, images: np.ndarray, labels, layer: str | None = None, batch_size: int = 64
) -> LastLayerGradients:
    """h and p - onehot(label) of each image for ``model``'s last dense layer (or ``layer``),
    which must end in a softmax (the course's ``flower_prob``)."""
    dense = model.get_layer(layer) if layer else model.layers[-1]
    if getattr(dense, "kernel", None) is None or len(dense.kernel.shape) != 2:
        raise ValueError(f"{dense.name}: TracIn's last layer must be a Dense layer")
    both = keras.Model(model.input, [dense.input, dense.output])
    h, p = [], []
    images = np.asarray(images, np.float32)
    for start in range(0, len(images), batch_size):
        a, b = both(images[start : start + batch_size], training=False)
        h.append(np.asarray(a, np.float64))
        p.append(np.asarray(b, np.float64))
    h, p = np.concatenate(h), np.concatenate(p)
    labels = np.asarray(labels, int)
    if labels.shape != (len(images),) or labels.min() < 0 or labels.max() >= p.shape[1]:
        raise ValueError(f"labels: one class id in 0..{p.shape[1] - 1} per image")
    return LastLayerGradients(h, p - np.eye(p.shape[1])[labels])


class TracIn:
    """TracIn-CP over the last layer of several checkpoints (Keras models of one architecture).

    ``learning_rates``: the η_i of each checkpoint (default 1 each; with a constant learning
    rate they only scale the scores)."""

    def __init__(self, checkpoints: Sequence[keras.Model], learning_rates=None, layer=None):
        if not checkpoints:
            raise ValueError("checkpoints: need at least one model")
        self.checkpoints = list(checkpoints)
        self.learning_rates = (
            np.ones(len(self.checkpoints)) if learning_rates is None else np.asarray(learning_rates)
        )
        if len(self.learning_rates) != len(self.checkpoints):
            raise ValueError("learning_rates: one per checkpoint")
        self.layer = layer

    def gradients(self, images, labels) -> list[LastLayerGradients]:
        return [last_layer_gradients(m, images, labels, self.layer) for m in self.checkpoints]

    def influence(self, test: list[LastLayerGradients], train: list[LastLayerGradients]):
        """[n_test, n_train]: influence of each training example on each test example."""
        total = 0.0
        for eta, a, b in zip(self.learning_rates, test, train):
            total = total + eta * (a.inputs @ b.inputs.T + 1.0) * (a.residuals @ b.residuals.T)
        return np.asarray(total)

    def self_influence(self, train: list[LastLayerGradients]) -> np.ndarray:
        """[n_train]: each training example's influence on itself (|gradient|², summed)."""
        total = 0.0
        for eta, g in zip(self.learning_rates, train):
            total = total + eta * ((g.inputs**2).sum(1) + 1.0) * (g.residuals**2).sum(1)
        return np.asarray(total)


def proponents_opponents(influence_row: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` most positive (proponents) and most negative (opponents) training
    examples of one test example (ties: the lower index first)."""
    row = np.asarray(influence_row)
    index = np.arange(len(row))
    return np.lexsort((index, -row))[:k], np.lexsort((index, row))[:k]


def recall_at(scores: np.ndarray, is_flagged: np.ndarray, fraction: float = 0.05) -> dict:
    """How many of the flagged examples (e.g. mislabelled) the top ``fraction`` of ``scores``
    finds, against what a random ranking would find on average (``fraction`` itself)."""
    flagged = np.asarray(is_flagged, bool)
    if flagged.shape != np.shape(scores) or not flagged.any():
        raise ValueError("is_flagged: one bool per score, at least one True")
    n_top = max(1, int(round(fraction * len(flagged))))
    top = np.lexsort((np.arange(len(flagged)), -np.asarray(scores)))[:n_top]
    return {
        "top": n_top,
        "found": int(flagged[top].sum()),
        "recall": float(flagged[top].sum() / flagged.sum()),
        "random_recall": float(n_top / len(flagged)),
    }
