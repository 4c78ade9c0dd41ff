"""The issue's check: IG recomputed independently from the exported ``xai_model`` signature
(trapezoid rule, black baseline) is complete within 5% and matches pmlv_utils' IG (r > 0.95)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from pmlv_utils import explain as ex  # noqa: E402
from pmlv_utils import export  # noqa: E402
from pmlv_utils.preprocess import RandomCropOrCenter  # noqa: E402

SIZE, INTERVALS = 32, 64


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """A smooth (tanh) CNN with a centre crop, exported with the course's signatures."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((SIZE, SIZE, 3), name="input_images")
    x = RandomCropOrCenter(24, 24, random=False)(inp)
    x = keras.layers.Conv2D(8, 3, activation="tanh", padding="same")(x)
    x = keras.layers.Conv2D(8, 3, activation="tanh", padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", kernel_initializer="he_normal")(x)
    model = keras.Model(inp, out)
    layer = model.layers[-1]
    layer.kernel.assign(layer.kernel * 8.0)  # confident outputs: F(x) - F(black) is not tiny
    out_dir = tmp_path_factory.mktemp("ig") / "export"
    return export.export_saved_model(model, str(out_dir), ["a", "b", "c"], SIZE)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    img = np.stack([yy, xx, 0.5 * np.ones_like(xx)], -1)
    img[10:20, 8:22] = [0.9, 0.8, 0.1]
    return np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)


def independent_ig(export_dir, image, target, intervals=INTERVALS):
    """IG straight from the signature: black baseline, trapezoid rule over `intervals`."""
    loaded = tf.saved_model.load(str(export_dir))  # must outlive its signature's variables
    fn = loaded.signatures["xai_model"]
    alphas = np.linspace(0.0, 1.0, intervals + 1, dtype=np.float32)
    path = tf.constant(alphas[:, None, None, None] * image[None])
    with tf.GradientTape() as tape:
        tape.watch(path)
        p = fn(input_images=path)["probability"][:, target]
    grads = tape.gradient(p, path).numpy()
    mean_grad = (grads[:-1] + grads[1:]).sum(axis=0) / (2 * intervals)
    f = p.numpy()
    return image * mean_grad, float(f[-1]), float(f[0])


def test_independent_ig_is_complete_and_matches_pmlv_utils(export_dir, image):
    model = ex.ExplainableModel.from_saved_model(export_dir)
    target = int(model.predict(image[None]).argmax())
    attributions, f_input, f_black = independent_ig(export_dir, image, target)
    delta = f_input - f_black
    assert abs(delta) > 0.05
    assert abs(attributions.sum() - delta) / abs(delta) <= 0.05  # completeness within 5%
    ours = ex.explain(
        image[None],
        [target],
        "ig",
        model,
        steps=INTERVALS + 1,  # n points = n - 1 trapezoids
        baseline="black",
        integration="riemann_trapezoid",
    )
    mine = attributions.sum(axis=-1)
    r = np.corrcoef(mine.ravel(), ours.attributions[0].ravel())[0, 1]
    assert r > 0.95
    assert ours.approx_error[0] <= 0.05
    saliency_rule = ex.explain(
        image[None], [target], "ig", model, steps=INTERVALS, baseline="black"
    )
    assert np.corrcoef(mine.ravel(), saliency_rule.attributions[0].ravel())[0, 1] > 0.95
    outside = ~model.field_of_view.mask()
    assert np.all(mine[outside] == 0) and model.field_of_view.window == [4, 4, 24, 24]


def test_alibi_integrated_gradients_matches_ours_with_the_same_rule(image):
    from pmlv_utils.explain.gradients import alibi_integrated_gradients

    keras.utils.set_random_seed(1)
    inp = keras.Input((SIZE, SIZE, 3))
    # an augmentation layer, as in the course's model: random unless called with training=False
    x = keras.layers.RandomBrightness(0.5, seed=1)(inp)
    x = keras.layers.Conv2D(6, 3, activation="tanh", padding="same", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    keras_model = keras.Model(inp, out)
    model = ex.ExplainableModel.from_keras(keras_model)
    target = int(model.predict(image[None]).argmax())
    theirs = alibi_integrated_gradients(
        image[None], [target], keras_model, "riemann_trapezoid", n_steps=32, internal_batch_size=16
    )
    ours = ex.explain(
        image[None],
        [target],
        "ig",
        model,
        steps=32,
        baseline="black",
        integration="riemann_trapezoid",
    )
    assert theirs["attributions"].shape == (1, SIZE, SIZE)
    r = np.corrcoef(theirs["attributions"].ravel(), ours.attributions.ravel())[0, 1]
    assert r > 0.999
    # alibi 0.5.5's trapezoid weights are 1/n (ends halved) on n points: they sum to (n-1)/n,
    # so its attributions are (n-1)/n of the integral (a gap of about 1/n); ours use 1/(n-1)
    assert theirs["attributions"].sum() == pytest.approx(
        ours.attributions.sum() * 31 / 32, rel=1e-3
    )
    assert ours.approx_error[0] < 1e-3 and theirs["gap"][0] == pytest.approx(1 / 32, abs=2e-3)
    gl = alibi_integrated_gradients(image[None], [target], keras_model, "gausslegendre", 32)
    ours_gl = ex.explain(
        image[None], [target], "ig", model, steps=32, baseline="black", integration="gausslegendre"
    )
    assert gl["gap"][0] == pytest.approx(ours_gl.approx_error[0], abs=1e-3)
    with pytest.raises(ValueError, match="training=False"):  # augmentation: refused, not wrong
        alibi_integrated_gradients(image[None], [target], keras_model, n_steps=32, layer="conv")
    plain_input = keras.Input((SIZE, SIZE, 3))  # a model without augmentation
    x = keras.layers.Conv2D(6, 3, activation="tanh", padding="same", name="conv")(plain_input)
    x = keras.layers.GlobalAveragePooling2D()(x)
    plain = keras.Model(plain_input, keras.layers.Dense(3, activation="softmax")(x))
    layer = alibi_integrated_gradients(image[None], [target], plain, n_steps=32, layer="conv")
    assert layer["raw"].shape == (1, SIZE, SIZE, 6)  # what the conv layer's outputs contribute
    with pytest.raises(ValueError, match="alibi's rules"):
        alibi_integrated_gradients(image[None], [target], keras_model, "riemann")
