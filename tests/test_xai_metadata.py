"""pmlv_utils.xai_metadata: signature listing, explanation_metadata.json written and read back."""
from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("explainable_ai_sdk")

from pmlv_utils import xai_metadata  # noqa: E402

SIZE = 16


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small model exported with the contract's three explanation-related signatures."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))

    def preprocess(filenames):
        return tf.map_fn(lambda f: tf.image.resize(tf.io.decode_png(tf.io.read_file(f), 3), [SIZE, SIZE]) / 255.0,
                         filenames, fn_output_signature=tf.float32)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("xai_preprocess", lambda filenames: {"input_images": preprocess(filenames)},
                         input_signature=[tf.TensorSpec([None], tf.string, name="filenames")])
    archive.add_endpoint("xai_model", lambda input_images: {"probability": model(input_images)},
                         input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="input_images")])
    archive.add_endpoint("serving_default",
                         lambda filenames: {"probability": model(preprocess(filenames)),
                                            "flower_type_int": tf.argmax(model(preprocess(filenames)), 1)},
                         input_signature=[tf.TensorSpec([None], tf.string, name="filenames")])
    folder = tmp_path_factory.mktemp("xai") / "export"
    archive.write_out(str(folder))
    return folder


def test_signature_table_lists_the_xai_signatures(model_dir):
    table = xai_metadata.signature_table(model_dir)
    rows = {(r.signature, r.direction, r.tensor): (r.dtype, r.shape) for r in table.itertuples()}
    assert rows[("xai_preprocess", "output", "input_images")] == ("float32", f"[N, {SIZE}, {SIZE}, 3]")
    assert rows[("xai_model", "input", "input_images")] == ("float32", f"[N, {SIZE}, {SIZE}, 3]")
    assert rows[("xai_model", "output", "probability")] == ("float32", "[N, 5]")
    assert rows[("serving_default", "input", "filenames")] == ("string", "[N]")
    with pytest.raises(KeyError, match="lacks signatures"):
        xai_metadata.signature_table(model_dir, names=["from_bytes_typo"])


def test_metadata_written_and_read_back(model_dir):
    path = xai_metadata.write_explanation_metadata(model_dir, baseline="random", seed=42)
    assert path == model_dir / xai_metadata.METADATA_FILE
    raw = json.loads(path.read_text())
    assert raw["inputs"]["input_images"]["modality"] == "image"
    assert raw["outputs"]["probability"]["output_tensor_name"] == "probability"
    config = xai_metadata.read_explanation_metadata(model_dir)
    assert (config.input_name, config.input_tensor_name) == ("input_images", "input_images")
    assert (config.output_name, config.output_tensor_name) == ("probability", "probability")
    assert config.modality == "image" and config.framework == "tensorflow2"
    expected = xai_metadata.make_baseline("random", (SIZE, SIZE, 3), seed=42)
    assert config.baseline.shape == (SIZE, SIZE, 3)
    assert np.allclose(config.baseline, expected, atol=1e-4)
    # the seed matters, and the other baselines are what they say
    assert not np.allclose(xai_metadata.make_baseline("random", (SIZE, SIZE, 3), seed=1), expected)
    xai_metadata.write_explanation_metadata(model_dir, baseline="black")
    assert np.all(xai_metadata.read_explanation_metadata(path).baseline == 0)
    vertex = xai_metadata.vertex_explanation_metadata(config)
    assert vertex["inputs"]["input_images"]["inputTensorName"] == "input_images"
    assert np.asarray(vertex["inputs"]["input_images"]["inputBaselines"][0]).shape == (SIZE, SIZE, 3)
    assert vertex["outputs"] == {"probability": {"outputTensorName": "probability"}}


def test_upload_commands_name_the_method_and_metadata():
    cmds = xai_metadata.vertex_upload_commands("gs://b/flowers", "vertex_metadata.json", None, "us-central1", steps=25)
    upload = next(c for c in cmds if c.startswith("gcloud ai models upload"))
    for flag in ("--explanation-method=integrated-gradients", "--explanation-step-count=25",
                 "--explanation-metadata-file=vertex_metadata.json", "--artifact-uri=gs://b/flowers",
                 "--region=us-central1", "--project=$PROJECT"):
        assert flag in upload
    with pytest.raises(ValueError, match="method"):
        xai_metadata.vertex_upload_commands("gs://b/m", "m.json", "p", "r", method="lime")


def test_bad_inputs_raise_clear_errors(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        xai_metadata.write_explanation_metadata(tmp_path)
    with pytest.raises(FileNotFoundError, match="no explanation metadata"):
        xai_metadata.read_explanation_metadata(tmp_path)
    with pytest.raises(ValueError, match="baseline shape"):
        xai_metadata.write_explanation_metadata(model_dir, baseline=np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="baseline must be one of"):
        xai_metadata.write_explanation_metadata(model_dir, baseline="grey")
    with pytest.raises(KeyError, match="no signature"):
        xai_metadata.write_explanation_metadata(model_dir, signature="xai_modle")
    bad = tmp_path / "explanation_metadata.json"
    bad.write_text(json.dumps({"inputs": {"a": {"input_tensor_name": "a", "modality": "numeric"}},
                               "outputs": {"p": {"output_tensor_name": "p"}}}))
    with pytest.raises(ValueError, match="inputs.a.modality"):
        xai_metadata.read_explanation_metadata(bad)
    bad.write_text(json.dumps({"inputs": {}, "outputs": {}, "surprise": 1}))
    with pytest.raises(ValueError, match=str(bad.name)):
        xai_metadata.read_explanation_metadata(bad)


def test_explainable_copy_leaves_the_original_alone(model_dir, tmp_path):
    copy = xai_metadata.explainable_copy(model_dir, tmp_path / "deploy")
    assert (copy / "saved_model.pb").is_file()
    before = sorted(p.name for p in model_dir.iterdir())
    xai_metadata.write_explanation_metadata(copy)
    assert (copy / xai_metadata.METADATA_FILE).is_file()
    assert sorted(p.name for p in model_dir.iterdir()) == before
