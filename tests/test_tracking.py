"""MLflow tracking of explanations, the explainer as a pyfunc model from code, serving, Beam."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
SIZE = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import keras

    from pmlv_utils import export, tracking
    from pmlv_utils import model as model_lib

    root = tmp_path_factory.mktemp("tracking")
    keras.utils.set_random_seed(0)
    m = model_lib.build_model("small_cnn", num_classes=5, img_size=SIZE, augment=False)
    export_dir = root / "export"
    export.export_saved_model(m, str(export_dir), LABELS, SIZE)
    images = []
    rng = np.random.default_rng(0)
    for i in range(3):
        path = root / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
        images.append(path)
    (root / "bad.jpg").write_text("not an image")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking.configure(uri=uri, workspace=root)
    return dict(root=root, export_dir=export_dir, images=images, uri=uri)


def test_default_store_is_sqlite_in_workspace(tmp_path, monkeypatch):
    from pmlv_utils import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        tracking.tracking_uri(workspace=tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    )


def test_log_and_read_back_attributions(setup):
    import mlflow

    from pmlv_utils import tracking

    maps = np.random.default_rng(1).normal(size=(2, SIZE, SIZE)).astype(np.float32)
    imgs = np.random.default_rng(2).random((2, SIZE, SIZE, 3)).astype(np.float32)
    with mlflow.start_run() as run:
        logged = tracking.log_explanations(
            imgs, maps, ["a", "b"], approx_error=np.array([0.01, 0.02])
        )
    assert "explanations/ig_attributions.npz" in logged and "explanations/ig_grid.png" in logged
    back = tracking.load_logged_attributions(run.info.run_id)
    np.testing.assert_allclose(back["attributions"], maps)
    assert back["names"] == ["a", "b"]
    with pytest.raises(ValueError):
        with mlflow.start_run():
            tracking.log_explanations(imgs, maps[:1], ["a", "b"])


@pytest.fixture(scope="module")
def logged_explainer(setup):
    import mlflow

    from pmlv_utils import tracking

    with mlflow.start_run():
        info = tracking.log_explainer(setup["export_dir"], method="ig", steps=32)
    return info.model_uri


def test_pyfunc_explainer_answers_json(setup, logged_explainer):
    import pandas as pd

    from pmlv_utils import explain, tracking

    model = tracking.load_explainer(logged_explainer)
    body = tracking.image_request(setup["images"][:2], targets=["roses", ""])
    rows = model.predict(pd.DataFrame(body["dataframe_records"]))
    assert len(rows) == 2 and rows[0]["label"] == "roses"
    attribution = np.asarray(rows[0]["attribution"])
    assert attribution.shape == (SIZE, SIZE)
    json.dumps(rows)  # plain JSON types only
    # Same numbers as computed in-process with the same method and steps.
    image = tracking.decode_request_images([body["dataframe_records"][0]["image_b64"]], SIZE)
    direct = explain.explain(
        image,
        [2],
        method="ig",
        steps=32,
        model=explain.ExplainableModel.from_saved_model(setup["export_dir"]),
    )
    np.testing.assert_allclose(attribution, direct.attributions[0], atol=1e-4)
    with pytest.raises(Exception, match="unknown target"):
        model.predict(
            pd.DataFrame(
                [{"image_b64": body["dataframe_records"][0]["image_b64"], "target": "cactus"}]
            )
        )
    with pytest.raises(Exception, match="base64"):
        model.predict(pd.DataFrame([{"image_b64": "%%%"}]))


@pytest.mark.slow
def test_served_explainer_and_batch(setup, logged_explainer, tmp_path):
    from pmlv_utils import tracking

    served = tracking.serve_model(logged_explainer, uri=setup["uri"], workspace=setup["root"])
    try:
        assert served.url.startswith("http://127.0.0.1:")
        resp = served.invocations(tracking.image_request(setup["images"][:1]))
        assert resp.status_code == 200, resp.text
        row = resp.json()["predictions"][0]
        assert np.asarray(row["attribution"]).shape == (SIZE, SIZE)
        assert Image.open(
            io.BytesIO(__import__("base64").b64decode(row["attribution_png_b64"]))
        ).size == (SIZE, SIZE)
        bad = served.invocations({"dataframe_records": [{"image_b64": "%%%"}]})
        assert 400 <= bad.status_code < 500
        assert (
            served.invocations(tracking.image_request(setup["images"][:1])).status_code == 200
        )  # still up
    finally:
        served.stop()

    paths = [str(p) for p in setup["images"]] + [
        str(setup["root"] / "bad.jpg"),
        str(setup["root"] / "missing.jpg"),
    ]
    result = tracking.run_batch_explanations(
        paths, logged_explainer, str(tmp_path / "batch"), uri=setup["uri"]
    )
    assert result["explained"] == 3 and result["dead_letter"] == 2
    reasons = [r["reason"] for r in tracking.read_jsonl(result["error_files"])]
    assert any("unreadable" in r for r in reasons)


def test_batch_explainer_refuses_hostile_files_before_the_model(tmp_path):
    """A PNG bomb, a FIFO and a sparse 200 MB file never reach the explainer (dead letters);
    the good image is explained. The explainer is a stand-in: no MLflow needed."""
    import os
    import struct
    import zlib

    import apache_beam as beam

    from pmlv_utils import tracking

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    packer = zlib.compressobj(9)
    rows = b"".join(packer.compress(b"\x00" * 2501) for _ in range(20_000)) + packer.flush()
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 1, 0, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows))
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    sparse = tmp_path / "sparse.jpg"
    with open(sparse, "wb") as f:
        f.truncate(200 * 2**20)
    good = tmp_path / "good.jpg"
    Image.new("RGB", (20, 20), (10, 200, 10)).save(good)
    seen = []

    class Model:
        def predict(self, frame):
            seen.extend(frame["image_b64"])
            row = dict(label="daisy", probability=0.9, approx_error=0.0, attribution_png_b64="")
            return [row for _ in range(len(frame))]

    class Shared:
        def acquire(self, load, tag=None):
            return type("Holder", (), {"model": Model()})()

    dofn = tracking.ExplainBatchDoFn("models:/none", Shared())
    out = list(dofn.process([str(bomb), str(fifo), str(sparse), str(good)]))
    dead = {
        o.value["path"]: o.value["reason"] for o in out if isinstance(o, beam.pvalue.TaggedOutput)
    }
    explained = [o["path"] for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
    assert explained == [str(good)] and len(seen) == 1
    assert "image too large" in dead[str(bomb)]
    assert "not a regular file" in dead[str(fifo)]
    assert "over the limit" in dead[str(sparse)]
