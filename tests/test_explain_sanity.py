"""Adebayo et al.'s sanity checks: maps must change when the model's weights are randomised
layer by layer, or when it is trained on shuffled labels."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pmlv_utils import explain as ex  # noqa: E402
from pmlv_utils.explain import sanity  # noqa: E402

SIZE = 24


@pytest.fixture(scope="module")
def keras_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, activation="tanh", padding="same", name="conv_a")(inp)
    x = keras.layers.Conv2D(8, 3, activation="tanh", padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    imgs = rng.uniform(0.2, 0.4, size=(2, SIZE, SIZE, 3)).astype(np.float32)
    imgs[0, 4:12, 6:16] = [0.9, 0.8, 0.1]
    imgs[1, 10:20, 2:10] = [0.1, 0.2, 0.9]
    return imgs


METHODS = {"ig": {"steps": 8}, "gradcam": {}}


def test_cascade_order_and_the_original_is_untouched(keras_model):
    assert sanity.weighted_layers(keras_model) == ["head", "conv_b", "conv_a"]
    before = [w.copy() for w in keras_model.get_weights()]
    copy = sanity.randomised_copy(keras_model, ["head", "conv_b"], seed=1)
    for w, b in zip(keras_model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    assert not np.allclose(copy.get_layer("head").kernel, keras_model.get_layer("head").kernel)
    np.testing.assert_array_equal(  # not in the list: kept
        copy.get_layer("conv_a").kernel.numpy(), keras_model.get_layer("conv_a").kernel.numpy()
    )


def test_maps_change_as_the_model_is_randomised(keras_model, images):
    table, maps = sanity.cascading_randomisation(images, [0, 1], keras_model, METHODS, seed=3)
    change = sanity.change_table(table)
    assert list(change.index.get_level_values("layer")) == ["head", "conv_b", "conv_a"]
    assert set(maps) == {0, 1, 2, 3}
    fully = change.iloc[-1]
    assert fully["ig"] < 0.9  # a map that survives the whole cascade would explain nothing
    # the same model gives the same map: the measure itself is 1 for no change
    again = ex.explain(images, [0, 1], "ig", ex.ExplainableModel.from_keras(keras_model), steps=8)
    assert np.allclose(sanity.map_change(maps[0]["ig"], again.attributions, None), 1.0)


def test_label_randomisation_trains_on_shuffled_labels(keras_model, images):
    rng = np.random.default_rng(0)
    train = rng.uniform(size=(12, SIZE, SIZE, 3)).astype(np.float32)
    labels = np.arange(12) % 3
    table, accuracy = sanity.label_randomisation(
        images, [0, 1], keras_model, train, labels, {"ig": {"steps": 8}}, epochs=1
    )
    assert 0.0 <= accuracy <= 1.0
    assert table.shape == (2, 3) and table["rank"].abs().max() <= 1.0
