"""TracIn from checkpoints: the closed-form last-layer gradients equal TensorFlow's, and
self-influence ranks mislabelled training images first."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from pmlv_utils.explain import tracin  # noqa: E402

SIZE = 8


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu", name="dense_hidden")(x)
    out = keras.layers.Dense(2, activation="softmax", name="flower_prob")(x)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    return model


def data(n=120, seed=0):
    """Class = is the image red rather than blue (an easy task)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 0.3, size=(n, SIZE, SIZE, 3)).astype(np.float32)
    images[labels == 1, :, :, 0] += 0.6
    images[labels == 0, :, :, 2] += 0.6
    return images, labels


def test_closed_form_dot_products_equal_tensorflow_gradients():
    model = small_model()
    images, labels = data(6)
    g = tracin.last_layer_gradients(model, images, labels)
    dense = model.get_layer("flower_prob")
    flat = []
    for x, y in zip(images, labels):
        with tf.GradientTape() as tape:
            p = model(x[None], training=False)
            loss = keras.losses.sparse_categorical_crossentropy(np.array([y]), p)
        gk, gb = tape.gradient(loss, [dense.kernel, dense.bias])
        flat.append(np.concatenate([gk.numpy().ravel(), gb.numpy().ravel()]))
    flat = np.array(flat, np.float64)
    ti = tracin.TracIn([model])
    np.testing.assert_allclose(ti.influence(g_list := [g], g_list), flat @ flat.T, rtol=1e-4)
    np.testing.assert_allclose(ti.self_influence([g]), (flat**2).sum(1), rtol=1e-4)


def test_self_influence_finds_flipped_labels():
    images, labels = data(160)
    flipped = np.zeros(len(labels), bool)
    flipped[::20] = True  # 8 of 160 training labels are wrong
    noisy = np.where(flipped, 1 - labels, labels)
    model = small_model(1)
    checkpoints = []
    for _ in range(3):  # three "epochs" of 5, a checkpoint after each
        model.fit(images, noisy, epochs=5, batch_size=16, verbose=0)
        checkpoint = keras.models.clone_model(model)
        checkpoint.set_weights(model.get_weights())
        checkpoints.append(checkpoint)
    ti = tracin.TracIn(checkpoints)
    scores = ti.self_influence(ti.gradients(images, noisy))
    found = tracin.recall_at(scores, flipped, fraction=0.05)
    assert found["top"] == 8 and found["random_recall"] == pytest.approx(0.05)
    assert found["recall"] >= 0.75  # random: 5% on average
    test = ti.gradients(images[:1], labels[:1])
    influence = ti.influence(test, ti.gradients(images, noisy))[0]
    proponents, opponents = tracin.proponents_opponents(influence, k=5)
    assert influence[proponents].min() >= influence[opponents].max()
    assert (noisy[proponents] == labels[0]).all()  # they share the test image's label


def test_bad_inputs_raise():
    model = small_model()
    images, labels = data(4)
    with pytest.raises(ValueError, match="labels"):
        tracin.last_layer_gradients(model, images, labels + 5)
    with pytest.raises(ValueError, match="Dense"):
        tracin.last_layer_gradients(model, images, labels, layer=model.layers[1].name)
    with pytest.raises(ValueError, match="checkpoints"):
        tracin.TracIn([])
    with pytest.raises(ValueError, match="is_flagged"):
        tracin.recall_at(np.zeros(3), np.zeros(3, bool))
