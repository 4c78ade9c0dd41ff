"""pmlv_utils.export: the SavedModel's signatures agree with the Keras model and each other."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
Image = pytest.importorskip("PIL.Image")

from pmlv_utils import export, preprocess  # noqa: E402
from pmlv_utils.model import build_model  # noqa: E402

LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
SIZE = 32


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w, fmt) in enumerate([(40, 60, "JPEG"), (50, 50, "PNG"), (70, 45, "JPEG")]):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = rng.integers(0, 255, 3)
        path = folder / f"img{i}.{fmt.lower()}"
        Image.fromarray(img).save(path, format=fmt)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = build_model("small_cnn", img_size=SIZE, seed=3)
    # one training step so batch-norm statistics differ from their initial values
    x = np.random.default_rng(1).random((8, SIZE, SIZE, 3)).astype("float32")
    model.fit(x, np.arange(8) % 5, epochs=1, verbose=0)
    folder = tmp_path_factory.mktemp("export") / "export"
    export.export_saved_model(
        model, str(folder), LABELS, SIZE, "small_cnn", extra_info={"note": "t"}
    )
    return model, folder


def test_signatures_and_extra_files(exported):
    _, folder = exported
    sigs = export.load_signatures(folder)
    assert set(sigs) == set(export.SIGNATURES)
    assert (folder / "assets.extra" / "labels.txt").read_text().split() == LABELS
    info = json.loads((folder / "assets.extra" / "model_info.json").read_text())
    assert info["img_size"] == SIZE and info["labels"] == LABELS and info["note"] == "t"
    assert export.read_model_info(folder)["model_kind"] == "small_cnn"
    text = export.describe_signatures(folder)
    assert (
        "serving_default(filenames: string[None]) -> flower_type_int: int64[None], "
        "flower_type_str: string[None], probability: float32[None, 5]" in text
    )
    assert f"xai_model(input_images: float32[None, {SIZE}, {SIZE}, 3])" in text


def test_serving_default_equals_keras_model_on_the_same_files(exported, image_files):
    model, folder = exported
    out = export.load_signatures(folder)["serving_default"](filenames=tf.constant(image_files))
    images = np.stack([preprocess.read_and_preprocess(f, SIZE, SIZE).numpy() for f in image_files])
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(out["probability"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out["flower_type_int"].numpy(), expected.argmax(axis=1))
    assert [s.decode() for s in out["flower_type_str"].numpy()] == [
        LABELS[i] for i in expected.argmax(axis=1)
    ]


def test_from_bytes_passthrough_and_xai_agree_with_serving_default(exported, image_files):
    _, folder = exported
    sigs = export.load_signatures(folder)
    files = tf.constant(image_files)
    ref = sigs["serving_default"](filenames=files)["probability"].numpy()
    raw = tf.constant([Path(f).read_bytes() for f in image_files])
    np.testing.assert_allclose(
        sigs["from_bytes"](img_bytes=raw)["probability"].numpy(), ref, atol=1e-6
    )
    keys = tf.constant([7, 8, 9], tf.int64)
    passed = sigs["passthrough"](filenames=files, key=keys)
    np.testing.assert_array_equal(passed["key"].numpy(), [7, 8, 9])
    assert [f.decode() for f in passed["filename"].numpy()] == image_files
    np.testing.assert_allclose(passed["probability"].numpy(), ref, atol=1e-6)
    images = sigs["xai_preprocess"](filenames=files)["input_images"]
    assert images.shape == (3, SIZE, SIZE, 3)
    np.testing.assert_allclose(
        sigs["xai_model"](input_images=images)["probability"].numpy(), ref, atol=1e-6
    )


def test_label_count_must_match(exported, tmp_path):
    model, _ = exported
    with pytest.raises(ValueError, match="4 labels"):
        export.export_saved_model(model, str(tmp_path / "x"), LABELS[:4], SIZE)


def test_missing_export_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        export.load_signatures(tmp_path)
    with pytest.raises(FileNotFoundError, match="model_info.json"):
        export.read_model_info(tmp_path)


def test_export_replaces_an_old_folder(exported, tmp_path):
    model, _ = exported
    target = tmp_path / "export"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    export.export_saved_model(model, str(target), LABELS, SIZE)
    assert not (target / "stale.txt").exists() and (target / "saved_model.pb").exists()


def test_saved_model_cli_lists_every_signature(exported):
    _, folder = exported
    cli = shutil.which("saved_model_cli", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("saved_model_cli not installed")
    out = subprocess.run(
        [cli, "show", "--dir", str(folder), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for name in export.SIGNATURES:
        assert f"signature_def['{name}']" in out
    assert "inputs['img_bytes']" in out and "outputs['flower_type_str']" in out


def test_converts_to_tflite_without_flex_ops(exported):
    _, folder = exported
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder), signature_keys=["xai_model"])
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS
    ]  # no Flex (select TF ops)
    flat = converter.convert()
    interpreter = tf.lite.Interpreter(model_content=flat)
    runner = interpreter.get_signature_runner("xai_model")
    x = np.random.default_rng(2).random((2, SIZE, SIZE, 3)).astype("float32")
    ref = export.load_signatures(folder)["xai_model"](input_images=tf.constant(x))["probability"]
    np.testing.assert_allclose(runner(input_images=x)["probability"], ref.numpy(), atol=1e-5)
