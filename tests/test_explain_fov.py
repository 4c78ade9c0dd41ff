"""The model's field of view, and the explanations drawn and scored on it (Grad-CAM alignment,
masks, chance levels, agreement measures, top-k without ties)."""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pmlv_utils import explain as ex  # noqa: E402
from pmlv_utils import export  # noqa: E402
from pmlv_utils.explain import fov as fov_module  # noqa: E402
from pmlv_utils.preprocess import RandomCropOrCenter  # noqa: E402

SIZE, CROP, CELL = 32, 16, 4  # 32x32 input, centre 16x16 crop (rows/cols 8..23), 4x4-px cells


def red_detector(crop: bool = True):
    """Class 0's evidence is red: 1x1 conv (red - green - blue), ReLU, 4x4 max-pool cells (the
    Grad-CAM layer), average pool, softmax. Its evidence is exactly where red pixels are."""
    inp = keras.Input((SIZE, SIZE, 3))
    x = RandomCropOrCenter(CROP, CROP, random=False, name="center_crop")(inp) if crop else inp
    x = keras.layers.Conv2D(1, 1, activation="relu", name="red")(x)
    x = keras.layers.MaxPooling2D(CELL, name="cells")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.get_layer("red").set_weights([np.array([1.0, -1, -1]).reshape(1, 1, 3, 1), np.zeros(1)])
    model.get_layer("head").set_weights([np.array([[5.0, -5.0]]), np.zeros(2)])
    return model


def red_square(top: int, left: int, side: int = CELL) -> np.ndarray:
    img = np.full((1, SIZE, SIZE, 3), 0.3, np.float32)
    img[0, top : top + side, left : left + side] = [1.0, 0.0, 0.0]
    return img


def centre_of_peak(m: np.ndarray) -> np.ndarray:
    """(row, col) centre of mass of the pixels at >= 90% of the map's maximum."""
    rows, cols = np.nonzero(m >= 0.9 * m.max())
    return np.array([rows.mean(), cols.mean()])


@pytest.mark.parametrize("top, left", [(8, 8), (8, 20), (20, 12)])  # three cells of the crop
def test_gradcam_peak_lands_on_the_evidence(top, left):
    model = ex.ExplainableModel.from_keras(red_detector())
    assert model.field_of_view.window == [8, 8, CROP, CROP]
    image = red_square(top, left)
    gc = ex.explain(image, [0], "gradcam", model).attributions[0]
    truth = np.array([top + (CELL - 1) / 2, left + (CELL - 1) / 2])
    assert np.abs(centre_of_peak(gc) - truth).max() <= 2.0
    outside = ~model.field_of_view.mask()
    assert np.all(gc[outside] == 0)  # nothing drawn where the model does not look


def test_stretching_gradcam_over_the_whole_image_misplaces_it():
    """The old behaviour (saliency's should_resize over the whole input) misses by > 2 px: this
    is what the test above catches."""
    import saliency.core as saliency

    model = ex.ExplainableModel.from_keras(red_detector())
    image = red_square(8, 8)

    def call_model(x, call_model_args=None, expected_keys=None):
        conv, grads = model.gradcam_tensors(x, [call_model_args["target"]] * len(x))
        return {
            saliency.base.CONVOLUTION_LAYER_VALUES: conv,
            saliency.base.CONVOLUTION_OUTPUT_GRADIENTS: grads,
        }

    stretched = saliency.GradCam().GetMask(
        image[0],
        call_model,
        call_model_args={"target": 0},
        should_resize=True,
        three_dims=False,
    )
    truth = np.array([8 + 1.5, 8 + 1.5])
    assert np.abs(centre_of_peak(stretched) - truth).max() > 2.0


def test_field_of_view_from_export_info_and_from_a_gradient_probe(tmp_path):
    keras_model = red_detector()
    out = export.export_saved_model(keras_model, str(tmp_path / "m"), ["red", "other"], SIZE)
    info_path = tmp_path / "m" / "assets.extra" / "model_info.json"
    info = json.loads(info_path.read_text())
    assert info["field_of_view"] == [8, 8, CROP, CROP]
    model = ex.ExplainableModel.from_saved_model(out)
    assert model.field_of_view.window == [8, 8, CROP, CROP]
    assert model.field_of_view.source == "model_info.json"
    del info["field_of_view"]  # an export written before the field was recorded
    info_path.write_text(json.dumps(info))
    probed = ex.ExplainableModel.from_saved_model(out).field_of_view
    assert probed.window == [8, 8, CROP, CROP] and probed.source == "gradient probe"
    # a model without a crop sees everything
    assert export.inference_window(red_detector(crop=False), SIZE) == [0, 0, SIZE, SIZE]


def test_ig_is_zero_outside_the_field_of_view():
    model = ex.ExplainableModel.from_keras(red_detector())
    ig = ex.explain(red_square(12, 12), [0], "ig", model, steps=8).attributions[0]
    assert np.all(ig[~model.field_of_view.mask()] == 0)
    assert np.abs(ig[model.field_of_view.mask()]).sum() > 0


def test_field_of_view_checks_and_helpers():
    fov = ex.FieldOfView.from_window([8, 8, 16, 16], (32, 32))
    assert fov.mask().sum() == 256 and not fov.is_whole
    maps = np.arange(2 * 32 * 32, dtype=float).reshape(2, 32, 32)
    assert fov.crop(maps).shape == (2, 16, 16)
    assert fov.place(np.ones((16, 16))).sum() == 256
    assert "16x16 window" in fov.describe()
    with pytest.raises(ValueError, match="outside"):
        ex.FieldOfView.from_window([20, 0, 16, 16], (32, 32))
    with pytest.raises(ValueError, match="expected"):
        fov.crop(np.zeros((30, 30)))
    assert fov_module.from_model_info({}, (32, 32)) is None


def test_chance_level_and_shares_on_the_field_of_view():
    fov = ex.FieldOfView.from_window([2, 2, 4, 4], (8, 8))
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:6] = True  # half of the window, an eighth of the image
    attr = np.zeros((8, 8))
    attr[2, 2] = 1.0  # on the object, inside the window
    attr[0, 0] = 3.0  # in the frame the model never sees: must not count
    whole = ex.attribution_share(attr, mask)
    seen = ex.attribution_share(attr, mask, fov)
    assert whole["object_area"] == pytest.approx(8 / 64)
    assert seen["object_area"] == pytest.approx(0.5)
    assert whole["object"] == pytest.approx(0.25)
    assert seen["object"] == pytest.approx(1.0)


def test_top_k_has_no_ties_and_is_deterministic():
    region = np.zeros((10, 10))
    region[:5, :] = 1.0  # a 50-pixel region of equal value: top 10% must still be 10 pixels
    mask = ex.top_k_mask(region, 0.1)
    assert mask.sum() == 10
    assert np.array_equal(mask, ex.top_k_mask(region.copy(), 0.1))
    assert mask[0].all()  # tie-break: row-major order
    support = np.zeros((10, 10), bool)
    support[5:, :] = True  # top-k within a support only
    assert not ex.top_k_mask(np.arange(100.0).reshape(10, 10), 0.1, support)[:5].any()


def test_agreement_compares_unsigned_maps_by_magnitude():
    rng = np.random.default_rng(0)
    signed = rng.normal(size=(3, 8, 8))
    maps = {"ig": signed, "gradcam": np.abs(signed)}  # same evidence, one without sign
    table = ex.agreement_table(maps, "rank_correlation")
    assert table.loc["ig", "gradcam"] == pytest.approx(1.0)
    raw = ex.agreement_table(maps, "rank_correlation", kinds={"ig": "signed", "gradcam": "signed"})
    assert raw.loc["ig", "gradcam"] < 0.5  # compared signed, the same evidence looks unrelated
    support = np.zeros((8, 8), bool)
    support[2:6, 2:6] = True
    framed = {"a": signed.copy(), "b": signed.copy()}
    framed["b"][:, ~support] = rng.normal(size=(3, int((~support).sum())))
    assert ex.agreement_table(framed, support=support).loc["a", "b"] == pytest.approx(1.0)
    pairs = ex.ranked_pairs(ex.agreement_table({**maps, "noise": rng.normal(size=(3, 8, 8))}))
    assert pairs[0][:2] == ("ig", "gradcam")
