"""In-memory and Beam prediction (pmlv_utils.predict) on a tiny untrained exported model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
TINY_SIZE = 32


@pytest.fixture(scope="session")
def tiny(tiny_assets):
    return tiny_assets


@pytest.fixture(scope="session")
def serving_model(tiny):
    from pmlv_utils import predict

    return predict.LoadedModel(tiny["export"])


def test_serving_model_reads_signatures_and_labels(serving_model):
    assert serving_model.labels == LABELS
    assert serving_model.img_size == TINY_SIZE
    described = serving_model.describe()
    assert described["serving_default"]["inputs"] == {
        "filenames": {"dtype": "string", "shape": [None]}
    }
    assert {"from_bytes", "passthrough", "xai_preprocess", "xai_model"} <= set(described)


def test_predict_files_rows_are_plain_json(tiny, serving_model):
    from pmlv_utils import predict

    rows = predict.predict_files(tiny["good"][:3], serving_model)
    assert [r["filename"] for r in rows] == tiny["good"][:3]
    for row in rows:
        json.dumps(row)  # plain JSON types only
        assert row["flower_type_str"] == LABELS[row["flower_type_int"]]
        assert abs(sum(row["probability"]) - 1.0) < 1e-4
        assert row["flower_type_int"] == int(np.argmax(row["probability"]))


def test_predict_files_names_missing_and_corrupt_files(tiny, serving_model):
    from pmlv_utils import predict

    missing = str(Path(tiny["images"]) / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        predict.predict_files([tiny["good"][0], missing], serving_model)
    with pytest.raises(ValueError, match="corrupt.jpg"):
        predict.predict_files([tiny["good"][0], tiny["corrupt"]], serving_model)


def test_bytes_and_filenames_give_identical_predictions(tiny, serving_model):
    from pmlv_utils import predict

    by_name = predict.predict_files(tiny["good"], serving_model)
    by_bytes = predict.predict_bytes([Path(f).read_bytes() for f in tiny["good"]], serving_model)
    diff = np.abs(
        np.array([r["probability"] for r in by_name])
        - np.array([r["probability"] for r in by_bytes])
    )
    assert diff.max() < 1e-6
    with pytest.raises(ValueError, match="image 1"):
        predict.predict_bytes([Path(tiny["good"][0]).read_bytes(), b"not an image"], serving_model)


def test_outputs_to_rows_repeats_scalars_and_decodes_bytes():
    from pmlv_utils import predict

    rows = predict.outputs_to_rows(
        {
            "p": np.array([[0.5, 0.5], [1.0, 0.0]], np.float32),
            "s": np.array([b"a", b"b"]),
            "k": np.int64(7),
        }
    )
    assert rows == [{"k": 7, "p": [0.5, 0.5], "s": "a"}, {"k": 7, "p": [1.0, 0.0], "s": "b"}]


def _by_filename(rows):
    names = [r["filename"] for r in rows]
    assert len(names) == len(set(names)), "a file was predicted more than once"
    return {r["filename"]: r for r in rows}


def test_beam_batch_writes_each_prediction_once_and_dead_letters_bad_files(
    tiny, serving_model, tmp_path
):
    """CSV input (book format, relative paths) + Shared/BatchElements: one load, many batches."""
    from pmlv_utils import predict

    images = Path(tiny["images"])
    lines = [f"{Path(f).name},daisy" for f in tiny["good"]] + [
        "missing.jpg,roses",
        "corrupt.jpg,tulips",
    ]
    csv = images / "batch_input.csv"
    csv.write_text("\n".join(lines) + "\n")
    result = predict.run_batch_prediction(
        str(csv), tiny["export"], str(tmp_path / "out" / "pred"), batch_size=4
    )

    got = _by_filename(result.predictions())
    assert set(got) == set(tiny["good"])
    expected = _by_filename(predict.predict_files(tiny["good"], serving_model))
    for name, row in got.items():
        np.testing.assert_allclose(row["probability"], expected[name]["probability"], atol=1e-6)
    dead = {Path(d["path"]).name: d["reason"] for d in result.dead_letters()}
    assert set(dead) == {"missing.jpg", "corrupt.jpg"}
    assert dead["missing.jpg"] == "file not found"
    assert dead["corrupt.jpg"].startswith("not a decodable image")
    assert result.counters["model_loads"] == 1  # Shared: one load for the (single) worker
    assert result.counters["batches"] > 1
    assert result.counters["predictions"] == len(tiny["good"])


def test_naive_dofn_loads_the_model_for_every_element(tiny, tmp_path):
    from pmlv_utils import predict

    files = tiny["good"][:3]
    result = predict.run_batch_prediction(
        files, tiny["export"], str(tmp_path / "naive"), mode="naive"
    )
    assert set(_by_filename(result.predictions())) == set(files)
    assert result.counters["model_loads"] == len(files)


def test_same_transforms_run_on_a_test_stream(tiny, tmp_path):
    from pmlv_utils import predict

    files = tiny["good"] + [tiny["corrupt"]]
    result = predict.run_batch_prediction(
        files,
        tiny["export"],
        str(tmp_path / "stream"),
        streaming=True,
        stream_batch_size=5,
        window_seconds=10,
        batch_size=4,
    )
    assert len(result.prediction_files()) == 3  # one file per 10 s window (5 + 5 + 3 elements)
    assert set(_by_filename(result.predictions())) == set(tiny["good"])
    assert [d["path"] for d in result.dead_letters()] == [tiny["corrupt"]]


def test_bad_arguments_are_named(tiny, tmp_path):
    from pmlv_utils import predict

    with pytest.raises(ValueError, match="mode"):
        predict.run_batch_prediction(tiny["good"], tiny["export"], str(tmp_path / "x"), mode="fast")
    with pytest.raises(FileNotFoundError, match="no exported model"):
        predict.LoadedModel(tmp_path / "not_a_model")
    with pytest.raises(KeyError, match="no signature 'nope'"):
        predict.LoadedModel(tiny["export"]).call("nope", filenames=[])
