"""pmlv_utils.explain.vertex_metadata: explanation_metadata.json written and read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("explainable_ai_sdk")

from pmlv_utils import explain, export  # noqa: E402
from pmlv_utils.explain import vertex_metadata  # noqa: E402

SIZE = 16


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small (untrained) model exported with the course's signatures."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))

    folder = tmp_path_factory.mktemp("xai") / "export"
    export.export_saved_model(
        model, str(folder), ["daisy", "dandelion", "roses", "sunflowers", "tulips"], SIZE
    )
    return folder


def test_metadata_written_and_read_back(model_dir):
    path = vertex_metadata.write_explanation_metadata(model_dir, baseline="random", seed=42)
    assert path == model_dir / vertex_metadata.METADATA_FILE
    raw = json.loads(path.read_text())
    assert raw["inputs"]["input_images"]["modality"] == "image"
    assert raw["outputs"]["probability"]["output_tensor_name"] == "probability"
    config = vertex_metadata.read_explanation_metadata(model_dir)
    assert (config.input_name, config.input_tensor_name) == ("input_images", "input_images")
    assert (config.output_name, config.output_tensor_name) == ("probability", "probability")
    assert config.modality == "image" and config.framework == "tensorflow2"
    expected = explain.make_baseline("random", (SIZE, SIZE, 3), seed=42)
    assert config.baseline.shape == (SIZE, SIZE, 3)
    assert np.allclose(config.baseline, expected, atol=1e-4)
    # the seed matters, and the other baselines are what they say
    assert not np.allclose(explain.make_baseline("random", (SIZE, SIZE, 3), seed=1), expected)
    vertex_metadata.write_explanation_metadata(model_dir, baseline="black")
    assert np.all(vertex_metadata.read_explanation_metadata(path).baseline == 0)
    vertex = vertex_metadata.vertex_explanation_metadata(config)
    assert vertex["inputs"]["input_images"]["inputTensorName"] == "input_images"
    assert np.asarray(vertex["inputs"]["input_images"]["inputBaselines"][0]).shape == (
        SIZE,
        SIZE,
        3,
    )
    assert vertex["outputs"] == {"probability": {"outputTensorName": "probability"}}


def test_upload_commands_name_the_method_and_metadata():
    cmds = vertex_metadata.vertex_upload_commands(
        "gs://b/flowers", "vertex_metadata.json", None, "us-central1", steps=25
    )
    upload = next(c for c in cmds if c.startswith("gcloud ai models upload"))
    for flag in (
        "--explanation-method=integrated-gradients",
        "--explanation-step-count=25",
        "--explanation-metadata-file=vertex_metadata.json",
        "--artifact-uri=gs://b/flowers",
        "--region=us-central1",
        "--project=$PROJECT",
    ):
        assert flag in upload
    with pytest.raises(ValueError, match="method"):
        vertex_metadata.vertex_upload_commands("gs://b/m", "m.json", "p", "r", method="lime")


def test_bad_inputs_raise_clear_errors(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        vertex_metadata.write_explanation_metadata(tmp_path)
    with pytest.raises(FileNotFoundError, match="no explanation metadata"):
        vertex_metadata.read_explanation_metadata(tmp_path)
    with pytest.raises(ValueError, match="baseline"):
        vertex_metadata.write_explanation_metadata(model_dir, baseline=np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="grey"):
        vertex_metadata.write_explanation_metadata(model_dir, baseline="grey")
    with pytest.raises(KeyError, match="no signature"):
        vertex_metadata.write_explanation_metadata(model_dir, signature="xai_modle")
    bad = tmp_path / "explanation_metadata.json"
    bad.write_text(
        json.dumps(
            {
                "inputs": {"a": {"input_tensor_name": "a", "modality": "numeric"}},
                "outputs": {"p": {"output_tensor_name": "p"}},
            }
        )
    )
    with pytest.raises(ValueError, match="inputs.a.modality"):
        vertex_metadata.read_explanation_metadata(bad)
    bad.write_text(json.dumps({"inputs": {}, "outputs": {}, "surprise": 1}))
    with pytest.raises(ValueError, match=str(bad.name)):
        vertex_metadata.read_explanation_metadata(bad)


def test_explainable_copy_leaves_the_original_alone(model_dir, tmp_path):
    copy = vertex_metadata.explainable_copy(model_dir, tmp_path / "deploy")
    assert (copy / "saved_model.pb").is_file()
    before = sorted(p.name for p in model_dir.iterdir())
    vertex_metadata.write_explanation_metadata(copy)
    assert (copy / vertex_metadata.METADATA_FILE).is_file()
    assert sorted(p.name for p in model_dir.iterdir()) == before


def test_explanation_uses_the_metadata_baseline(model_dir):
    """IG integrates from the baseline stored in the metadata, not from a default."""
    images = np.random.default_rng(5).random((2, SIZE, SIZE, 3)).astype("float32")
    results = {}
    for kind in ("white", "random"):
        vertex_metadata.write_explanation_metadata(model_dir, baseline=kind, seed=7)
        config = vertex_metadata.read_explanation_metadata(model_dir)
        model = vertex_metadata.explainable_model(model_dir, config)
        result = vertex_metadata.explain_with_metadata(
            images, model_dir, target_classes=[0, 3], steps=8, config=config, model=model
        )
        assert result.attributions.shape == (2, SIZE, SIZE)
        expected_f_baseline = model.predict(config.baseline[None])[0][[0, 3]]
        assert np.allclose(result.extra["f_baseline"], expected_f_baseline, atol=1e-5)
        results[kind] = result.attributions
    assert not np.allclose(results["white"], results["random"])
    config.input_tensor_name = "pixels"
    with pytest.raises(ValueError, match="input_tensor_name 'pixels'"):
        vertex_metadata.explainable_model(model_dir, config)
    with pytest.raises(ValueError, match="'ig' or 'xrai'"):
        vertex_metadata.explain_with_metadata(images, model_dir, method="lime")


def test_explain_request_body_carries_the_metadata_baseline(model_dir):
    vertex_metadata.write_explanation_metadata(model_dir, baseline="random", seed=3)
    config = vertex_metadata.read_explanation_metadata(model_dir)
    body = vertex_metadata.explain_request_body(
        ["a.jpg", "b.jpg"], config, steps=10, target_classes=[1, 2]
    )
    assert body["instances"] == ["a.jpg", "b.jpg"]
    assert body["parameters"]["method"] == "ig" and body["parameters"]["steps"] == 10
    assert np.allclose(np.asarray(body["parameters"]["baseline"]), config.baseline)
    assert body["parameters"]["target_classes"] == [1, 2]
    json.dumps(body)  # plain JSON
    xrai = vertex_metadata.explain_request_body(["a.jpg"], config, method="xrai")
    assert np.asarray(xrai["parameters"]["baselines"]).shape == (1, SIZE, SIZE, 3)
