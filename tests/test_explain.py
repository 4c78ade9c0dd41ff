"""Unit tests of pmlv_utils.explain (tiny Keras models, 32x32 images: fast)."""

import base64

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pmlv_utils import explain as ex  # noqa: E402

SIZE = 32
N_CLASSES = 3


@pytest.fixture(scope="module")
def keras_model():
    """A small smooth CNN (tanh, softmax): IG's path integral converges on it."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, activation="tanh", padding="same", name="conv_a")(inp)
    x = keras.layers.Conv2D(8, 3, activation="tanh", padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(N_CLASSES, activation="softmax")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def model(keras_model):
    return ex.ExplainableModel.from_keras(keras_model)


@pytest.fixture(scope="module")
def images():
    """Two images with structure (a bright square on a gradient), so superpixels exist."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    imgs = np.stack([np.stack([yy, xx, 0.5 * np.ones_like(xx)], -1)] * 2).astype(np.float32)
    imgs[0, 8:20, 10:24] = [0.9, 0.8, 0.1]
    imgs[1, 14:30, 4:14] = [0.1, 0.2, 0.9]
    return np.clip(imgs + 0.03 * rng.standard_normal(imgs.shape), 0, 1).astype(np.float32)


# ---- every method: shape, counting ---------------------------------------------------

FAST_OPTIONS = {
    "ig": {"steps": 8},
    "xrai": {"steps": 8},
    "gradcam": {},
    "lime": {"num_samples": 150},
    "kernelshap": {"num_samples": 150},
    "anchors": {"batch_size": 50},
}


@pytest.mark.parametrize("method", ex.METHODS)
def test_every_method_returns_one_map_per_image(method, model, images):
    result = ex.explain(images, [0, 2], method, model, **FAST_OPTIONS[method])
    assert result.method == method
    assert result.attributions.shape == (2, SIZE, SIZE)
    assert result.attributions.dtype == np.float32
    assert np.all(np.isfinite(result.attributions))
    assert result.model_calls > 0 and result.seconds > 0
    assert list(result.extra["target_classes"]) == [0, 2]
    if method in ("ig", "xrai"):
        assert result.approx_error.shape == (2,)
    else:
        assert result.approx_error is None


def test_model_calls_count_images(model, images):
    before = model.calls()
    model.warm_up()
    assert model.calls() == before  # tracing runs are not counted
    steps = 8
    result = ex.explain(images, [0, 1], "ig", model, steps=steps, integration="gausslegendre")
    # steps gradient evaluations per image + one forward pass of each image and the baseline
    assert result.model_calls == 2 * steps + 3
    lime = ex.explain(images[:1], [0], "lime", model, num_samples=120)
    assert lime.model_calls == 120  # LIME asks the model once per perturbed sample


def test_target_none_means_predicted_class(model, images):
    predicted = model.predict(images).argmax(axis=1)
    result = ex.explain(images, None, "ig", model, steps=4)
    assert list(result.extra["target_classes"]) == list(predicted)


# ---- IG: completeness, integration rules, baselines -----------------------------------


def _independent_gap(keras_model, images, targets, attributions, baseline):
    """|sum(attr) - (F(x) - F(b))| / |F(x) - F(b)| from the model's own outputs."""
    f_x = keras_model.predict(images, verbose=0)[np.arange(len(images)), targets]
    f_b = keras_model.predict(np.repeat(baseline[None], len(images), 0), verbose=0)[
        np.arange(len(images)), targets
    ]
    total = attributions.reshape(len(images), -1).sum(axis=1)
    return np.abs(total - (f_x - f_b)) / np.abs(f_x - f_b)


@pytest.mark.parametrize("integration", ["riemann", "riemann_trapezoid", "gausslegendre"])
def test_ig_completeness_gap_decreases_with_steps(integration, keras_model, model, images):
    targets = np.array([0, 1])
    baseline = ex.make_baseline("white", images.shape[1:])
    gaps = []
    for steps in (2, 8, 64):
        result = ex.explain(
            images, targets, "ig", model, steps=steps, baseline="white", integration=integration
        )
        independent = _independent_gap(keras_model, images, targets, result.attributions, baseline)
        np.testing.assert_allclose(result.approx_error, independent, rtol=1e-3, atol=1e-4)
        gaps.append(independent.mean())
    assert gaps[0] > gaps[1] > gaps[2] or gaps[2] < 1e-4
    assert gaps[-1] < 0.05  # enough steps on a smooth model: within the IG paper's 5%


def test_ig_left_and_right_sums_bracket_and_converge(model, images):
    coarse = ex.explain(
        images, [0, 0], "ig", model, steps=4, baseline="random", integration="riemann_left"
    )
    fine = ex.explain(
        images, [0, 0], "ig", model, steps=128, baseline="random", integration="riemann_left"
    )
    assert np.all(fine.approx_error < coarse.approx_error)


def test_ig_baselines_differ_and_random_is_seeded(model, images):
    black = ex.explain(images, [0, 0], "ig", model, steps=8, baseline="black")
    white = ex.explain(images, [0, 0], "ig", model, steps=8, baseline="white")
    r1 = ex.explain(images, [0, 0], "ig", model, steps=8, baseline="random", seed=3)
    r2 = ex.explain(images, [0, 0], "ig", model, steps=8, baseline="random", seed=3)
    r3 = ex.explain(images, [0, 0], "ig", model, steps=8, baseline="random", seed=4)
    assert not np.allclose(black.attributions, white.attributions)
    np.testing.assert_array_equal(r1.attributions, r2.attributions)
    assert not np.allclose(r1.attributions, r3.attributions)


def test_integration_points_integrate_polynomials():
    f = lambda a: 3 * a**2  # integral over [0, 1] is 1  # noqa: E731
    for rule in ("riemann_middle", "riemann_trapezoid", "gausslegendre", "riemann"):
        alphas, weights = ex.integration_points(rule, 200)
        assert abs(np.sum(weights * f(alphas)) - 1.0) < 0.02, rule
    alphas, weights = ex.integration_points("gausslegendre", 2)  # exact up to degree 3
    assert abs(np.sum(weights * f(alphas)) - 1.0) < 1e-12
    left = ex.integration_points("riemann_left", 10)
    right = ex.integration_points("riemann_right", 10)
    assert left[0][0] == 0.0 and right[0][-1] == 1.0


# ---- black boxes and bad input ----------------------------------------------------------


def test_black_box_refuses_gradient_methods(keras_model, images):
    box = ex.ExplainableModel.from_predict_fn(lambda x: keras_model.predict(x, verbose=0), SIZE)
    assert not box.supports_gradients
    for method in ex.GRADIENT_METHODS:
        with pytest.raises(ValueError, match="black box"):
            ex.explain(images, [0, 0], method, box)
    with pytest.raises(ValueError, match="no gradients"):
        box.target_gradients(images, [0, 0])
    result = ex.explain(images[:1], [1], "lime", box, num_samples=100)
    assert result.attributions.shape == (1, SIZE, SIZE)


def test_black_box_and_keras_agree_on_lime(keras_model, model, images):
    box = ex.ExplainableModel.from_predict_fn(lambda x: keras_model.predict(x, verbose=0), SIZE)
    a = ex.explain(images[:1], [1], "lime", box, num_samples=200, seed=5)
    b = ex.explain(images[:1], [1], "lime", model, num_samples=200, seed=5)
    np.testing.assert_allclose(a.attributions, b.attributions, atol=1e-4)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, SIZE, SIZE, 3), np.uint8), "float"),
        (np.zeros((2, 16, 16, 3), np.float32), "16x16"),
        (np.zeros((SIZE, SIZE, 3), np.float32), r"images\[None\]"),
        (np.zeros((2, SIZE, SIZE, 1), np.float32), "shape"),
        (np.full((1, SIZE, SIZE, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((1, SIZE, SIZE, 3), np.nan, np.float32), "NaN"),
        (np.array([["a"]]), "dtype"),
    ],
)
def test_bad_images_raise(bad, message, model):
    with pytest.raises(ValueError, match=message):
        ex.explain(bad, None, "ig", model)


def test_bad_targets_methods_and_options_raise(model, images):
    with pytest.raises(ValueError, match="out of range"):
        ex.explain(images, [0, N_CLASSES], "ig", model)
    with pytest.raises(ValueError, match="out of range"):
        ex.explain(images, [-1, 0], "ig", model)
    with pytest.raises(ValueError, match="one class per image"):
        ex.explain(images, [0, 1, 2], "ig", model)
    with pytest.raises(ValueError, match="class indices"):
        ex.explain(images, [0.5, 1], "ig", model)
    with pytest.raises(ValueError, match="unknown 'shapley'"):
        ex.explain(images, [0, 1], "shapley", model)
    with pytest.raises(ValueError, match="not used by method 'ig'"):
        ex.explain(images, [0, 1], "ig", model, num_samples=10)
    with pytest.raises(ValueError, match="integration"):
        ex.explain(images, [0, 1], "ig", model, integration="simpson")
    with pytest.raises(ValueError, match="baseline"):
        ex.explain(images, [0, 1], "ig", model, baseline="grey")
    with pytest.raises(ValueError, match="steps"):
        ex.explain(images, [0, 1], "ig", model, steps=0)
    with pytest.raises(ValueError, match="ExplainableModel"):
        ex.explain(images, [0, 1], "ig", model=None)


def test_saved_model_signature_without_convs_refuses_gradcam(keras_model, tmp_path, images):
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(keras_model)
    archive.add_endpoint(
        "xai_model",
        lambda x: {"probability": keras_model(x, training=False)},
        [tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="input_images")],
    )
    archive.write_out(str(tmp_path / "export"), verbose=False)
    saved = ex.ExplainableModel.from_saved_model(tmp_path / "export")
    assert saved.img_size == (SIZE, SIZE) and saved.num_classes == N_CLASSES
    np.testing.assert_allclose(
        saved.predict(images), keras_model.predict(images, verbose=0), atol=1e-5
    )
    ig_saved = ex.explain(images, [0, 1], "ig", saved, steps=8)
    ig_keras = ex.explain(
        images, [0, 1], "ig", ex.ExplainableModel.from_keras(keras_model), steps=8
    )
    np.testing.assert_allclose(ig_saved.attributions, ig_keras.attributions, atol=1e-5)
    with pytest.raises(ValueError, match="Grad-CAM"):
        ex.explain(images, [0, 1], "gradcam", saved)
    with pytest.raises(ValueError, match="not a SavedModel"):
        ex.ExplainableModel.from_saved_model(tmp_path)


# ---- metrics on hand-made arrays --------------------------------------------------------


def test_rank_correlation_on_hand_made_maps():
    a = np.arange(16, dtype=float).reshape(4, 4)
    assert ex.rank_correlation(a, a * 10 + 3) == pytest.approx(1.0)
    assert ex.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert ex.rank_correlation(a, a**3) == pytest.approx(1.0)  # ranks, not values
    assert np.isnan(ex.rank_correlation(a, np.ones_like(a)))


def test_top_k_iou_on_hand_made_maps():
    a = np.arange(100, dtype=float).reshape(10, 10)
    assert ex.top_k_mask(a, 0.1).sum() == 10
    assert ex.top_k_iou(a, a, 0.1) == 1.0
    assert ex.top_k_iou(a, -a, 0.1) == 0.0
    b = a.copy()
    b.ravel()[[99, 98, 97, 96, 95]] = -1  # 5 of the top 10 leave; 5 others (85..89) enter
    assert ex.top_k_iou(a, b, 0.1) == pytest.approx(5 / 15)
    assert ex.top_k_mask(np.zeros((4, 4)), 0.25).sum() == 0  # a flat map has no top
    assert np.isnan(ex.top_k_iou(np.zeros((4, 4)), np.arange(16.0).reshape(4, 4)))
    binary = np.zeros((10, 10))
    binary[:2, :3] = 1  # 6% of the pixels: ties at the threshold count, zeros never do
    assert ex.top_k_mask(binary, 0.1).sum() == 6


def test_agreement_table_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(1)
    maps = {"a": rng.normal(size=(3, 8, 8)), "b": rng.normal(size=(3, 8, 8))}
    maps["c"] = maps["a"] * 2
    table = ex.agreement_table(maps, "rank_correlation")
    np.testing.assert_allclose(np.diag(table), 1.0)
    np.testing.assert_allclose(table.values, table.values.T)
    assert table.loc["a", "c"] == pytest.approx(1.0)
    assert abs(table.loc["a", "b"]) < 0.5
    assert ex.agreement_table(maps, "top_k_iou").loc["a", "c"] == 1.0


def test_attribution_share_on_hand_made_mask():
    attr = np.zeros((4, 4))
    attr[0, 0] = 3.0  # on the flower
    attr[3, 3] = 1.0  # on the background
    attr[1, 1] = -5.0  # negative mass is ignored
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    share = ex.attribution_share(attr, mask)
    assert share["object"] == pytest.approx(0.75)
    assert share["background"] == pytest.approx(0.25)
    assert share["object_area"] == pytest.approx(0.25)
    batch = ex.attribution_share(np.stack([attr, -attr]), np.stack([mask, mask]))
    assert batch["object"][0] == pytest.approx(0.75)
    assert batch["object"][1] == pytest.approx(1.0)  # -attr: only the -5 on the flower is positive
    assert np.isnan(ex.attribution_share(np.zeros((4, 4)), mask)["object"])
    with pytest.raises(ValueError, match="shape"):
        ex.attribution_share(attr, mask[:3])


def test_pooled_background_share_weighs_images_by_their_evidence():
    mask = np.zeros((2, 4, 4), bool)
    mask[:, :2, :2] = True  # the flower: the top-left quarter
    attr = np.zeros((2, 4, 4))
    attr[0, 0, 0], attr[0, 3, 3] = 3.0, 1.0  # image 0: 1 of 4 on the background
    attr[1, 3, 3], attr[1, 0, 1] = 9.0, -2.0  # image 1: all its positive mass (9) off it
    assert ex.pooled_background_share(attr, mask) == pytest.approx(10 / 13)
    per_image = ex.attribution_share(attr, mask)["background"]
    assert per_image.mean() == pytest.approx(0.625)  # the mean of shares is another number
    fov = ex.FieldOfView(0, 0, 3, 3, (4, 4))  # the model never sees row 3 / column 3
    assert ex.pooled_background_share(attr, mask, fov) == pytest.approx(0.0)
    assert np.isnan(ex.pooled_background_share(-np.abs(attr), mask))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        ex.pooled_background_share(attr[0], mask[0])


def test_preprocess_mask_follows_the_image_crop():
    mask = np.zeros((60, 100), bool)  # wide: the centre crop keeps columns 20..80
    mask[:, 50:] = True
    out = ex.preprocess_mask(mask, 30)
    assert out.shape == (30, 30)
    assert out[:, :14].sum() == 0 and out[:, 16:].all()


def test_lime_stability_is_one_for_a_deterministic_explainer(model, images):
    result = ex.lime_stability(images[0], 0, model, seeds=(1, 1, 1), num_samples=100)
    assert result["stability"] == 1.0
    varied = ex.lime_stability(images[0], 0, model, seeds=(1, 11, 21), num_samples=60)
    assert 0.0 <= varied["stability"] <= 1.0 and len(varied["pairwise_iou"]) == 3
    assert ex.LIME_STABILITY_SEEDS == (1, 11, 21, 31, 41, 51, 61, 71, 81)


@pytest.mark.parametrize("hide", ex.HIDE_MODES)
def test_kernelshap_is_efficient(hide, model, images):
    """KernelSHAP values of the superpixels add up to f(image) - f(all superpixels off)."""
    result = ex.explain(images[:1], [2], "kernelshap", model, num_samples=300, hide=hide)
    segments = result.extra["segments"][0]
    per_segment = [result.attributions[0][segments == s][0] for s in range(segments.max() + 1)]
    off = ex.hidden_image(images[0], segments, hide)
    probs = model.predict(np.stack([images[0], off]))[:, 2]
    assert sum(per_segment) == pytest.approx(probs[0] - probs[1], abs=1e-4)


def test_hide_modes_switch_superpixels_off(model, images):
    segments = ex.superpixels(images[0])
    assert segments.min() == 0 and len(np.unique(segments)) == segments.max() + 1
    means = ex.hidden_image(images[0], segments, "mean")
    for s in range(segments.max() + 1):
        pixels = images[0][segments == s]
        np.testing.assert_allclose(
            means[segments == s], np.broadcast_to(pixels.mean(axis=0), pixels.shape), atol=1e-5
        )
    assert np.all(ex.hidden_image(images[0], segments, "grey") == 0.5)
    with pytest.raises(ValueError, match="hide"):
        ex.explain(images[:1], [0], "lime", model, hide="blur")
    anchors = ex.explain(images[:1], [0], "anchors", model, hide="black", batch_size=50)
    anchor = set(anchors.extra["anchor_segments"][0])
    expected = np.isin(anchors.extra["segments"][0], list(anchor))
    np.testing.assert_array_equal(anchors.attributions[0] == 1, expected)


def test_png_round_trip():
    a = np.zeros((8, 8))
    a[2, 3] = 1.0
    a[5, 5] = -1.0
    b64 = ex.attribution_to_png_b64(a)
    base64.b64decode(b64)
    back = ex.png_b64_to_array(b64)
    assert back.shape == (8, 8) and back[2, 3] == 1.0 and back[5, 5] == 0.0


def test_plots_draw(model, images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = ex.explain(images, [0, 1], "ig", model, steps=4)
    for fig in (
        ex.plots.plot_attribution(images[0], result.attributions[0]),
        ex.plots.plot_explanation_grid(images, result.attributions, ["a", "b"], "IG"),
        ex.plots.plot_method_comparison(
            images, {"ig": result.attributions, "abs": np.abs(result.attributions)}
        ),
    ):
        assert fig.axes
        plt.close(fig)
