"""pmlv_utils.tflite: float32 / float16 / int8 conversion, LiteRT inference, clear errors.

A tiny CNN is trained for a few seconds on colour-coded images (one hue per class, plus
noise and a random square) and exported by ``pmlv_utils.export.export_saved_model``; its
``xai_model`` signature is what gets converted. Every kind must run in LiteRT and agree with
the SavedModel on most images.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")

from pmlv_utils import export, tflite  # noqa: E402

SIZE = 32
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
HUES = np.array(
    [[0.9, 0.9, 0.9], [0.9, 0.8, 0.1], [0.8, 0.1, 0.2], [0.9, 0.5, 0.0], [0.6, 0.1, 0.6]]
)


def colour_images(n: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    images = rng.uniform(0.0, 0.4, (n, SIZE, SIZE, 3))
    for img, label in zip(images, labels):
        top, left = rng.integers(0, SIZE // 2, 2)
        img[top : top + SIZE // 2, left : left + SIZE // 2] = HUES[label] + rng.normal(0, 0.05, 3)
    return np.clip(images, 0, 1).astype("float32"), labels


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3), name="input_images")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = colour_images(400, seed=0)
    model.fit(images, labels, epochs=15, batch_size=32, verbose=0)

    folder = tmp_path_factory.mktemp("export") / "export"
    export.export_saved_model(model, str(folder), CLASSES, SIZE)
    return folder


@pytest.fixture(scope="module")
def converted(export_dir, tmp_path_factory):
    calibration, _ = colour_images(50, seed=1)
    out = tmp_path_factory.mktemp("tflite")
    return tflite.convert(export_dir, out, representative_images=calibration)


@pytest.fixture(scope="module")
def test_data():
    return colour_images(60, seed=2)


def test_all_kinds_written_and_int8_is_smaller(converted):
    assert set(converted) == set(tflite.KINDS)
    sizes = {kind: path.stat().st_size for kind, path in converted.items()}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    assert (converted["float32"].parent / "labels.txt").read_text().split() == CLASSES


@pytest.mark.parametrize("kind", tflite.KINDS)
def test_each_kind_agrees_with_savedmodel(kind, export_dir, converted, test_data):
    images, labels = test_data
    reference = tflite.evaluate_savedmodel(export_dir, images, labels)
    assert reference["accuracy"] > 0.8, (
        "the tiny model did not learn; the agreement test would mean nothing"
    )
    row = tflite.evaluate_tflite(converted[kind], images, labels, reference["probabilities"])
    assert row["agreement"] >= 0.9
    assert np.isfinite(row["probabilities"]).all()
    assert np.allclose(row["probabilities"].sum(axis=1), 1.0, atol=0.05)
    tolerance = {"float32": 1e-4, "float16": 1e-2, "int8": 0.1}[kind]
    assert np.abs(row["probabilities"] - reference["probabilities"]).max() < tolerance
    assert row["latency_ms_median"] > 0 and row["size_bytes"] == converted[kind].stat().st_size


def test_int8_model_takes_uint8_pixels(converted):
    clf = tflite.TFLiteClassifier(converted["int8"])
    assert clf.quantized and clf.input_dtype == np.uint8
    assert clf.image_shape == (SIZE, SIZE, 3)
    images, labels = colour_images(5, seed=3)
    assert clf.predict_labels(images) == [CLASSES[i] for i in clf.predict(images).argmax(1)]
    # one image without a batch axis works too
    assert clf.predict(images[0]).shape == (1, len(CLASSES))


def test_comparison_table(export_dir, converted, test_data):
    images, labels = test_data
    table = tflite.compare_with_savedmodel(export_dir, converted, images, labels)
    assert list(table.index) == ["savedmodel", "tflite_float32", "tflite_float16", "tflite_int8"]
    assert table.loc["tflite_float32", "size_vs_float32_tflite"] == pytest.approx(1.0)
    assert table.loc["savedmodel", "accuracy_change_points"] == 0.0


def test_bad_inputs_raise_clear_errors(export_dir, converted, tmp_path):
    clf = tflite.TFLiteClassifier(converted["float32"])
    with pytest.raises(ValueError, match=r"expected shape \[N, 32, 32, 3\]"):
        clf.predict(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        clf.predict(np.zeros((1, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clf.predict(np.full((1, SIZE, SIZE, 3), 255.0, np.float32))
    with pytest.raises(FileNotFoundError, match="no TFLite model"):
        tflite.TFLiteClassifier(tmp_path / "missing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError, match="junk.tflite"):
        tflite.TFLiteClassifier(tmp_path / "junk.tflite")
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        tflite.convert(tmp_path / "nowhere", tmp_path / "out", kinds=["float32"])
    with pytest.raises(ValueError, match="representative_images"):
        tflite.convert(export_dir, tmp_path / "out", kinds=["int8"])
    with pytest.raises(ValueError, match="kinds"):
        tflite.convert(export_dir, tmp_path / "out", kinds=["int4"])
    with pytest.raises(KeyError, match="no signature 'nope'"):
        tflite.convert(export_dir, tmp_path / "out", kinds=["float32"], signature="nope")


def test_op_summary_shows_integer_only_int8(converted):
    int8_ops = tflite.op_summary(converted["int8"])
    types = set(
        ", ".join(int8_ops["input_types"].tolist() + int8_ops["output_types"].tolist()).split(", ")
    )
    assert "CONV_2D" in int8_ops.index and not any(t.startswith("float") for t in types)
    float_ops = tflite.op_summary(converted["float32"])
    assert "float32" in float_ops.loc["CONV_2D", "input_types"]


def test_quantization_debugger_table(export_dir):
    calibration, _ = colour_images(50, seed=1)
    table = tflite.quantization_error_by_layer(export_dir, calibration, calibration[:20])
    assert {"op", "layer", "elements", "step", "rmse_in_steps"} <= set(table.columns)
    assert "CONV_2D" in set(table["op"])
    # on the calibration images themselves nothing is clipped: errors are rounding-sized
    assert np.isfinite(table["rmse_in_steps"]).all() and table["rmse_in_steps"].max() < 2.0
