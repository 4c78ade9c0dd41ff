"""Sanity checks for saliency maps (Adebayo et al., 2018, "Sanity Checks for Saliency Maps").

An explanation of a model must depend on the model. Two checks:

- **cascading model-parameter randomisation**: re-initialise the weights layer by layer, from
  the output down to the input, and explain the same images at each stage; a map that stays the
  same while the model is being destroyed explains the image (an edge detector), not the model;
- **label randomisation**: train the same architecture on shuffled labels (it can only
  memorise) and compare its maps with the real model's.

The change is measured as the Spearman rank correlation between the map of the original model
and the map of the randomised one, of their magnitudes |map| (Adebayo et al.'s choice: the
sign of an attribution may flip with a re-initialised layer), on the model's field of view.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ..model import compile_model
from .adapters import ExplainableModel
from .api import explain
from .metrics import rank_correlation


def weighted_layers(model: keras.Model) -> list[str]:
    """Names of the top-level layers with a kernel (conv, dense, a nested backbone), from the
    output back to the input: the order of the cascade."""
    return [layer.name for layer in reversed(model.layers) if _kernel_layers(layer)]


def _kernel_layers(layer) -> list:
    if hasattr(layer, "layers"):  # a nested model (a backbone)
        return [inner for sub in layer.layers for inner in _kernel_layers(sub)]
    return [layer] if getattr(layer, "kernel", None) is not None else []


def _seeded(initializer, seed: int):
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = int(seed)
    return initializer.__class__.from_config(config)


def randomised_copy(model: keras.Model, layer_names: Sequence[str], seed: int = 0) -> keras.Model:
    """A copy of ``model`` (same weights) with the layers ``layer_names`` re-initialised with
    their own initializers (seeded). The original model is not touched."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for i, name in enumerate(layer_names):
        for j, layer in enumerate(_kernel_layers(copy.get_layer(name))):
            s = seed * 1000 + i * 100 + j
            layer.kernel.assign(_seeded(layer.kernel_initializer, s)(layer.kernel.shape))
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(_seeded(layer.bias_initializer, s + 50)(layer.bias.shape))
    return copy


def map_change(reference: np.ndarray, other: np.ndarray, support: np.ndarray | None) -> list:
    """Per image: Spearman correlation of |reference map| and |other map| on ``support``."""
    return [rank_correlation(np.abs(a), np.abs(b), support) for a, b in zip(reference, other)]


@contextlib.contextmanager
def _no_retracing_warnings():
    """Each randomised copy gets its own traced functions, so TensorFlow warns about
    'retracing' on every stage: expected here, so hidden while the checks run."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _maps(images, targets, model, methods: dict) -> dict:
    return {
        m: explain(images, targets, m, model, **opts).attributions for m, opts in methods.items()
    }


def cascading_randomisation(
    images: np.ndarray,
    targets,
    keras_model: keras.Model,
    methods: dict[str, dict],
    layers: Sequence[str] | None = None,
    seed: int = 0,
):
    """Explain ``images`` with each method ({name: options}) as the layers are re-initialised
    one more at a time from the top (default :func:`weighted_layers`).

    Returns (table, maps): one row per (stage, method, image) with the rank correlation of the
    map with the original model's (``stage`` 0 = the original model; stage k = the top k
    layers randomised, ``layer`` the last one added), and {stage: {method: maps}}."""
    layers = list(layers) if layers is not None else weighted_layers(keras_model)
    original = ExplainableModel.from_keras(keras_model)
    support = original.field_of_view.mask()
    reference = _maps(images, targets, original, methods)
    rows, all_maps = [], {0: reference}
    for k in range(1, len(layers) + 1):
        model = ExplainableModel.from_keras(randomised_copy(keras_model, layers[:k], seed))
        with _no_retracing_warnings():
            all_maps[k] = _maps(images, targets, model, methods)
        for method, maps in all_maps[k].items():
            for i, r in enumerate(map_change(reference[method], maps, support)):
                rows.append(
                    {"stage": k, "layer": layers[k - 1], "method": method, "image": i, "rank": r}
                )
    return pd.DataFrame(rows), all_maps


def label_randomised_model(
    keras_model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int = 20,
    seed: int = 0,
    lrate: float = 1e-3,
    batch_size: int = 32,
):
    """The same architecture, freshly initialised, trained on ``images`` with their labels
    shuffled (seeded). Returns (model, its accuracy on the shuffled labels it was given)."""
    keras.utils.set_random_seed(int(seed))
    model = keras.models.clone_model(keras_model)  # clone_model re-initialises the weights
    compile_model(model, lrate)
    shuffled = np.random.default_rng(seed).permutation(np.asarray(labels))
    model.fit(images, shuffled, epochs=int(epochs), batch_size=int(batch_size), verbose=0)
    _, accuracy = model.evaluate(images, shuffled, verbose=0)
    return model, float(accuracy)


def change_table(table: pd.DataFrame) -> pd.DataFrame:
    """Stage x method: the mean rank correlation with the original maps (1 = unchanged)."""
    return table.groupby(["stage", "layer", "method"], sort=False)["rank"].mean().unstack("method")


def label_randomisation(
    images: np.ndarray,
    targets,
    keras_model: keras.Model,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    methods: dict[str, dict],
    epochs: int = 20,
    seed: int = 0,
):
    """Adebayo et al.'s second check: the maps of a model trained on shuffled labels against
    the real model's, for the same images and target classes.

    Returns (one row per (method, image) with the rank correlation, the shuffled-label model's
    training accuracy on its shuffled labels)."""
    original = ExplainableModel.from_keras(keras_model)
    support = original.field_of_view.mask()
    shuffled, accuracy = label_randomised_model(
        keras_model, train_images, train_labels, epochs, seed
    )
    reference = _maps(images, targets, original, methods)
    with _no_retracing_warnings():
        other = _maps(images, targets, ExplainableModel.from_keras(shuffled), methods)
    rows = [
        {"method": m, "image": i, "rank": r}
        for m in methods
        for i, r in enumerate(map_change(reference[m], other[m], support))
    ]
    return pd.DataFrame(rows), accuracy
