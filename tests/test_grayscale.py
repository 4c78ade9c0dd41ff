"""The five grayscale variants of 07b compute the same image."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from pmlv_utils import grayscale  # noqa: E402


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 7, 11, 3), dtype=np.float32)
    imgs[0, 0, :4] = 0.0  # exercise the linear branch of the sRGB curve
    imgs[0, 1, :4] = 0.001
    return imgs


def _reference(images):
    lum = images @ np.array(grayscale.LUMA_WEIGHTS, dtype=np.float64)
    return np.where(lum > 0.0031308, 1.055 * np.power(lum, 1 / 2.4) - 0.055, 12.92 * lum)


@pytest.mark.parametrize("name", list(grayscale.VARIANTS))
def test_variant_matches_reference(images, name):
    out = grayscale.VARIANTS[name](images)
    assert out.shape == images.shape[:3]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(images), rtol=1e-5, atol=1e-6)


def test_all_variants_agree(images):
    outputs = [fn(images) for fn in grayscale.VARIANTS.values()]
    for out in outputs[1:]:
        np.testing.assert_allclose(out, outputs[0], rtol=1e-5, atol=1e-6)


def test_layer_shape_comes_from_the_data(images):
    model = grayscale.make_grayscale_model(images.shape[1:])
    assert tuple(model.input_shape) == (None, 7, 11, 3)
    assert tuple(model.output_shape) == (None, 7, 11)
    with pytest.raises(ValueError, match="height, width, 3"):
        grayscale.make_grayscale_model((7, 11))


def test_layer_accepts_keyword_arguments():
    layer = grayscale.make_grayscale_layer(name="gray", dtype="float32")
    assert layer.name == "gray"


def test_load_images_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        grayscale.load_images([str(tmp_path / "missing.jpg")], 8, 8)


def test_time_variants_returns_outputs_that_agree(images):
    results = grayscale.time_variants(images[:1], repeats=1, loop_repeats=1, progress=False)
    assert list(results) == list(grayscale.VARIANTS)
    for r in results.values():
        assert r["wall_s"] > 0 and r["cpu_s"] >= 0
        np.testing.assert_allclose(r["value"], results["iterate"]["value"], rtol=1e-5, atol=1e-6)


def test_pick_paths_takes_classes_in_turn(tmp_path):
    csv = tmp_path / "all_data.csv"
    csv.write_text("".join(f"{tmp_path}/{c}/{i}.jpg,{c}\n" for c in ("b", "a") for i in range(3)))
    picked = grayscale.pick_paths(str(csv), 3)
    assert [p.split("/")[-2:] for p in picked] == [["a", "0.jpg"], ["b", "0.jpg"], ["a", "1.jpg"]]
    with pytest.raises(ValueError, match="only 6"):
        grayscale.pick_paths(str(csv), 7)
