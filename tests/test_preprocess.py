"""pmlv_utils.preprocess: THE preprocessing function and the augmentation layers."""

from __future__ import annotations

import io

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
Image = pytest.importorskip("PIL.Image")

from pmlv_utils import preprocess  # noqa: E402


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(array)
    if mode:
        img = img.convert(mode)
    img.save(buf, format=fmt)
    return buf.getvalue()


def three_bands(height=40, width=120) -> np.ndarray:
    """Left third red, middle third green, right third blue."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 3, 0] = 255
    img[:, width // 3 : 2 * width // 3, 1] = 255
    img[:, 2 * width // 3 :, 2] = 255
    return img


@pytest.mark.parametrize(
    "fmt,mode", [("PNG", None), ("JPEG", None), ("PNG", "RGBA"), ("PNG", "L"), ("GIF", None)]
)
def test_any_format_gives_float_rgb_in_unit_range(fmt, mode):
    data = encode(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8), fmt, mode)
    out = preprocess.preprocess_image(data, 24, 32)
    assert out.shape == (24, 32, 3) and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0


def test_centre_crop_keeps_the_middle_of_a_wide_image():
    out = preprocess.preprocess_image(encode(three_bands()), 16, 16).numpy()
    # a square from a 40x120 image is its middle 40x40: the green band only
    assert out[..., 1].min() > 0.95 and out[..., 0].max() < 0.05 and out[..., 2].max() < 0.05


def test_same_aspect_keeps_everything():
    out = preprocess.preprocess_image(encode(three_bands(40, 120)), 10, 30).numpy()
    assert out[:, 1, 0].min() > 0.9 and out[:, -2, 2].min() > 0.9  # red left, blue right


def test_static_shape_inside_a_graph():
    fn = tf.function(
        lambda b: preprocess.preprocess_image(b, 20, 20),
        input_signature=[tf.TensorSpec([], tf.string)],
    )
    assert fn.get_concrete_function().structured_outputs.shape == (20, 20, 3)


def test_read_and_preprocess_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ValueError, match="nope.jpg: file not found"):
        preprocess.read_and_preprocess(str(missing), 8, 8)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg: not a decodable image"):
        preprocess.read_and_preprocess(str(text), 8, 8)
    good = tmp_path / "ok.png"
    good.write_bytes(encode(three_bands()))
    assert preprocess.read_and_preprocess(str(good), 8, 8).shape == (8, 8, 3)


def test_crop_size_validates_ratio():
    assert preprocess.crop_size(64, 0.75) == 48
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ValueError):
            preprocess.crop_size(64, bad)


def random_batch(n=6, size=20, seed=0):
    return tf.constant(np.random.default_rng(seed).random((n, size, size, 3)), tf.float32)


def test_random_crop_varies_per_call_and_per_image_in_training():
    layer = preprocess.RandomCropOrCenter(12, 12, seed=3)
    x = tf.repeat(random_batch(1), 8, axis=0)  # 8 copies of one image
    a, b = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert a.shape == (8, 12, 12, 3)
    assert not np.allclose(a, b)  # new draw each call
    assert len({a[i].tobytes() for i in range(8)}) > 1  # per image, not per batch


def test_random_crop_inference_is_the_centre_and_same_size():
    layer = preprocess.RandomCropOrCenter(12, 12, seed=3)
    x = random_batch()
    out = layer(x, training=False).numpy()
    np.testing.assert_array_equal(out, x.numpy()[:, 4:16, 4:16, :])
    np.testing.assert_array_equal(out, layer(x, training=False).numpy())
    fixed = preprocess.RandomCropOrCenter(12, 12, random=False)
    np.testing.assert_array_equal(fixed(x, training=True).numpy(), out)


def test_random_crop_rejects_small_inputs():
    with pytest.raises(ValueError, match="cannot crop"):
        preprocess.RandomCropOrCenter(30, 30)(random_batch(size=20), training=False)


def augmenter(**kwargs):
    layers = preprocess.augmentation_layers(20, 0.75, seed=1, **kwargs)

    def apply(x, training):
        for layer in layers:  # may be none (augment=False)
            x = layer(x, training=training)
        return x

    return apply


def test_augmentation_random_in_training_identity_at_inference():
    model = augmenter(with_color_distort=True)
    x = random_batch()
    t1, t2 = model(x, training=True).numpy(), model(x, training=True).numpy()
    i1, i2 = model(x, training=False).numpy(), model(x, training=False).numpy()
    assert t1.shape == i1.shape == (6, 20, 20, 3)  # the image size, in training too
    assert not np.allclose(t1, t2)
    # inference: the whole image, unchanged (no crop, no colour change)
    np.testing.assert_array_equal(i1, x.numpy())
    np.testing.assert_array_equal(i1, i2)
    assert 0.0 <= t1.min() and t1.max() <= 1.0


def test_zoom_crop_varies_per_image_and_stays_inside_the_image():
    layer = preprocess.RandomZoomCrop(32, 32, min_scale=0.5, seed=3)
    # a horizontal ramp: a crop of side s starting at column c shows values in [c, c + s]
    ramp = np.tile(np.linspace(0, 1, 32, dtype="float32")[None, :, None], (32, 1, 3))
    x = tf.repeat(tf.constant(ramp)[None], 16, axis=0)
    out = layer(x, training=True).numpy()
    assert out.shape == (16, 32, 32, 3)
    spans = out[:, 0, -1, 0] - out[:, 0, 0, 0]  # the share of the image each window covers
    assert 0.5 - 0.05 <= spans.min() and spans.max() <= 1.0 + 1e-6
    assert spans.std() > 0.05  # random scales, per image
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    no_crop = preprocess.RandomZoomCrop(32, 32, min_scale=1.0)
    np.testing.assert_array_equal(no_crop(x, training=True).numpy(), x.numpy())
    with pytest.raises(ValueError, match="min_scale"):
        preprocess.RandomZoomCrop(32, 32, min_scale=0.0)
    with pytest.raises(ValueError, match="built for 32x32"):
        layer(random_batch(size=20), training=False)


def test_layer_sets_of_the_ablation():
    names = lambda **kw: [layer.name for layer in preprocess.augmentation_layers(20, **kw)]
    assert names() == ["random_crop", "random_lr_flip", "random_brightness", "random_contrast"]
    assert names(crop_ratio=1.0, with_color_distort=False) == ["random_lr_flip"]
    assert names(flip=False, with_color_distort=False) == ["random_crop"]
    assert names(crop_ratio=1.0, flip=False) == ["random_brightness", "random_contrast"]
    assert names(augment=False) == []
    with pytest.raises(ValueError, match="crop_ratio"):
        names(crop_ratio=1.5)


def test_augmentation_examples_inference_view_is_the_image():
    image = random_batch(1, size=24)[0].numpy()
    views, inference = preprocess.augmentation_examples(image, count=3)
    assert views.shape == (3, 24, 24, 3)
    np.testing.assert_array_equal(inference, image)


def test_colour_distortion_changes_pixels_not_only_positions():
    x = tf.fill([4, 20, 20, 3], 0.5)  # flat grey: crop and flip cannot change it
    with_colour = augmenter(with_color_distort=True)(x, training=True).numpy()
    without = augmenter(with_color_distort=False)(x, training=True).numpy()
    np.testing.assert_allclose(without, 0.5)
    assert np.abs(with_colour - 0.5).max() > 0.01


def test_no_augment_is_deterministic_in_training():
    model = augmenter(augment=False)
    x = random_batch()
    np.testing.assert_array_equal(model(x, training=True).numpy(), model(x, training=False).numpy())


def test_same_seed_same_draws():
    x = random_batch()
    a = augmenter()(x, training=True).numpy()
    b = augmenter()(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
