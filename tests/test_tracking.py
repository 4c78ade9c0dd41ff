"""MLflow tracking, the SHAP explainer as a pyfunc model from code, serving, Beam and Spark."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
SIZE = 32
SETTINGS = dict(max_evals=64, batch_size=64, map_size=SIZE, masker="blur(8,8)", seed=3)


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


def test_explainer_settings_are_checked():
    from pmlv_utils import tracking

    assert tracking.explainer_config(max_evals=10)["max_evals"] == 10
    with pytest.raises(ValueError, match="unknown explainer settings"):
        tracking.explainer_config(steps=10)


@pytest.fixture(scope="module")
def logged_explainer(setup):
    import mlflow

    from pmlv_utils import tracking

    with mlflow.start_run() as run:
        info = tracking.log_explainer(setup["export_dir"], **SETTINGS)
    return dict(uri=info.model_uri, run_id=run.info.run_id)


def _b64(path) -> str:
    return base64.b64encode(open(path, "rb").read()).decode()


def test_pyfunc_shap_explainer_answers_json_rows(setup, logged_explainer):
    from pmlv_utils import tracking

    model = tracking.load_explainer(logged_explainer["uri"])
    body = tracking.image_request(setup["images"][:2])
    frame = pd.DataFrame(body["dataframe_records"] + [{"image_b64": "%%%"}, {"image_b64": ""}])
    out = model.predict(frame)
    assert list(out.columns) == list(tracking.OUTPUT_COLUMNS) and len(out) == 4
    rows = out.to_dict("records")
    json.dumps(rows, allow_nan=False)  # plain JSON: no NaN, no None, no numpy types
    for row in rows[:2]:
        assert row["error"] == "" and row["label"] in LABELS
        shap_map = np.asarray(row["shap"])
        assert shap_map.shape == (SIZE, SIZE)
        # SHAP's additivity: the map adds up to f(x)[explained class] - f(fully masked).
        np.testing.assert_allclose(
            shap_map.sum(), row["probability"] - row["base_value"], rtol=0.02, atol=1e-4
        )
        png = Image.open(io.BytesIO(base64.b64decode(row["shap_png_b64"])))
        assert png.size == (SIZE, SIZE)
    assert "base64" in rows[2]["error"] and "empty" in rows[3]["error"]
    assert rows[2]["shap"] == [] and rows[2]["probability"] == 0.0 and rows[2]["label"] == ""
    # The seed is a setting: the same input gives the same values.
    again = model.predict(frame.iloc[:1])
    assert again.loc[0, "shap"] == rows[0]["shap"]
    # The signature refuses paths (a server that opened them would read its files for anyone).
    with pytest.raises(Exception, match=r"missing inputs \['image_b64'\]"):
        model.predict(pd.DataFrame({"path": [str(setup["images"][0])]}))


def test_provenance_is_logged_with_the_explainer(logged_explainer):
    import mlflow

    record = mlflow.artifacts.load_dict(
        f"runs:/{logged_explainer['run_id']}/shap_explainer_provenance.json"
    )
    assert record["seed"] == SETTINGS["seed"] and record["max_evals"] == SETTINGS["max_evals"]
    assert record["masker"] == SETTINGS["masker"] and "PartitionExplainer" in record["method"]
    assert set(record["versions"]) >= {"shap", "mlflow", "tensorflow"}
    assert record["model"]["labels"] == LABELS


@pytest.mark.slow
def test_served_explainer_and_beam_batch(setup, logged_explainer, tmp_path):
    from pmlv_utils import tracking

    served = tracking.serve_model(
        logged_explainer["uri"], uri=setup["uri"], workspace=setup["root"]
    )
    try:
        assert served.url.startswith("http://127.0.0.1:")
        resp = served.invocations(tracking.image_request(setup["images"][:1]))
        assert resp.status_code == 200, resp.text
        row = resp.json()["predictions"][0]
        assert row["error"] == "" and np.asarray(row["shap"]).shape == (SIZE, SIZE)
        bad = served.invocations({"dataframe_records": [{"image_b64": "%%%"}]})
        assert bad.status_code == 200 and "base64" in bad.json()["predictions"][0]["error"]
        wrong = served.invocations({"dataframe_records": [{"path": "/etc/passwd"}]})
        assert 400 <= wrong.status_code < 500
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
        paths, logged_explainer["uri"], str(tmp_path / "batch"), uri=setup["uri"]
    )
    assert result["explained"] == 3 and result["dead_letter"] == 2
    reasons = {r["path"]: r["reason"] for r in tracking.read_jsonl(result["error_files"])}
    assert "unreadable" in reasons[paths[-1]] and "image" in reasons[paths[-2]]
    explained = tracking.read_jsonl(result["explanation_files"])
    assert {r["path"] for r in explained} == set(paths[:3])
    assert all(np.asarray(r["shap"]).shape == (SIZE, SIZE) for r in explained)


@pytest.fixture(scope="module")
def spark(setup):
    from pmlv_utils import tracking

    if tracking.java_runtime() is None:
        pytest.skip(tracking.JAVA_MISSING)
    session = tracking.local_spark(cores=2, driver_memory="1g", workspace=setup["root"])
    print(f"Spark session started in {session.pmlv_start_s:.1f} s")
    yield session
    session.stop()


@pytest.mark.slow
def test_spark_udf_explains_paths_and_keeps_dead_letters(setup, logged_explainer, spark):
    import time

    from pmlv_utils import tracking

    paths = [str(p) for p in setup["images"]] + [
        str(setup["root"] / "bad.jpg"),
        str(setup["root"] / "missing.jpg"),
    ]
    started = time.perf_counter()
    explained, dead = tracking.spark_explanations(spark, logged_explainer["uri"], paths, 1)
    good, bad = explained.toPandas(), dead.toPandas()
    print(f"spark_udf job: {len(paths)} files in {time.perf_counter() - started:.1f} s")
    assert sorted(good["path"]) == sorted(paths[:3])  # no row lost, no "None" error text
    assert set(good["label"]) <= set(LABELS)
    assert all(np.asarray(m.tolist()).shape == (SIZE, SIZE) for m in good["shap"])
    reasons = dict(zip(bad["path"], bad["reason"]))
    assert set(reasons) == set(paths[3:])
    assert reasons[paths[-1]].startswith("unreadable") and reasons[paths[-2]].startswith("refused")
    # The same numbers as the pandas path (same seed, same settings).
    model = tracking.load_explainer(logged_explainer["uri"])
    local = model.predict(pd.DataFrame(tracking.image_request(paths[:1])["dataframe_records"]))
    row = good.set_index("path").loc[paths[0]]
    np.testing.assert_allclose(np.asarray(row["shap"].tolist()), np.asarray(local.loc[0, "shap"]))


def test_install_java_explains_why_it_cannot_install(tmp_path):
    import os
    import shutil
    import subprocess

    from notebook_tools import REPO

    bin_dir = tmp_path / "bin"  # sed, head, id but no java and no apt-get
    bin_dir.mkdir()
    for tool in ("sed", "head", "id", "date"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    done = subprocess.run(
        ["/bin/bash", str(REPO / "tools" / "install_java.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot install openjdk-17-jre-headless" in done.stderr


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
