"""pmlv_utils.model: the small CNN and MobileNetV2 builders."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from pmlv_utils import model as M  # noqa: E402


def test_small_cnn_outputs_probabilities():
    model = M.build_model("small_cnn", num_classes=5, img_size=32, num_hidden=8)
    x = np.random.default_rng(0).random((3, 32, 32, 3)).astype("float32")
    p = model(x, training=False).numpy()
    assert p.shape == (3, 5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("dense_hidden").units == 8
    assert all("/" not in layer.name for layer in model.layers)
    assert model.optimizer is not None  # compiled


def test_same_seed_same_initial_weights():
    a = M.build_model(img_size=32, seed=7).get_weights()
    b = M.build_model(img_size=32, seed=7).get_weights()
    c = M.build_model(img_size=32, seed=8).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_bad_arguments():
    with pytest.raises(ValueError, match="model_kind"):
        M.build_model("resnet")
    with pytest.raises(ValueError, match="only applies to mobilenetv2"):
        M.build_model("small_cnn", weights="imagenet")
    with pytest.raises(ValueError, match="at least 32"):
        M.build_model("mobilenetv2", img_size=24)


def test_keras_file_round_trip(tmp_path):
    model = M.build_model(img_size=32)
    x = np.random.default_rng(1).random((2, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), atol=1e-6)
    assert again.get_layer("random_crop").height == model.get_layer("random_crop").height


def test_mobilenetv2_local_weights_file_is_loaded_and_frozen(tmp_path):
    # A stand-in for a downloaded no-top weights file: random weights saved to .h5.
    size = 48
    donor = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=None, pooling="avg"
    )
    path = str(tmp_path / "mobilenet_v2_notop.weights.h5")
    donor.save_weights(path)
    model = M.build_model("mobilenetv2", img_size=64, crop_ratio=0.75, weights=path)
    backbone = next(layer for layer in model.layers if layer.name.startswith("mobilenetv2"))
    assert not backbone.trainable
    assert all(np.array_equal(a, b) for a, b in zip(backbone.get_weights(), donor.get_weights()))
    counts = M.count_params(model)
    assert counts["trainable"] == 1280 * 16 + 16 + 16 * 5 + 5  # only the head trains
    assert counts["total"] > 2_000_000
