"""The cloud path, offline: every storage layer of the course against a local GCS emulator.

``pytest -k "gcs or emulator"`` selects these tests (every name holds "gcs"). The emulator
(gcp-storage-emulator from PyPI, pinned in requirements.txt) runs on 127.0.0.1 in a child
process with a TLS proxy for TensorFlow's gs:// (see tests/gcs_emulator.py for why); every
test skips, saying why, when it cannot start. The layers, in the order the data flows:

- google-cloud-storage talks to the emulator (``STORAGE_EMULATOR_HOST``);
- ``dataset_files`` and ``workspace`` read and publish gs:// folders (``tf.io.gfile``);
- the dataset job (Beam DirectRunner) reads ``gs://…/all_data.csv`` and writes gs:// TFRecords
  and ``dict.txt`` beside them;
- the trainer (``python -m pmlv_utils.train``) reads them with only ``--input_topdir`` and
  writes its job dir and export to gs://;
- the model server loads that gs:// export and reads images under a gs:// allowed root.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gcs_emulator import EmulatorProcess, EmulatorUnavailable

BUCKET = "pmlv-test"
GS = f"gs://{BUCKET}"
REPO = Path(__file__).resolve().parents[1]
CLASSES_PER_SPLIT = (0.5, 0.25, 0.25)  # tiny data: every split gets some images


def _reload_google_auth_metadata() -> None:
    # google-auth reads GCE_METADATA_HOST/IP when this module is imported: read them again
    module = sys.modules.get("google.auth.compute_engine._metadata")
    if module is not None:
        importlib.reload(module)


@pytest.fixture(scope="module")
def gcs_emulator():
    """The emulator with bucket ``pmlv-test``; os.environ points every layer at it (restored
    afterwards). Skips, with the reason, when the emulator cannot start."""
    pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed")
    pytest.importorskip("cryptography", reason="cryptography (for the proxy's CA) is missing")
    try:
        emulator = EmulatorProcess(BUCKET).start()
    except (EmulatorUnavailable, OSError) as err:
        pytest.skip(f"the GCS emulator cannot start: {err}")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("NO_GCE_CHECK", raising=False)  # the fake metadata server answers instead
            for name, value in emulator.env().items():
                mp.setenv(name, value)
            _reload_google_auth_metadata()
            yield emulator
    finally:
        emulator.stop()
        _reload_google_auth_metadata()


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def test_gcs_emulator_serves_the_bucket_to_google_cloud_storage(gcs_emulator):
    from google.cloud import storage

    client = storage.Client()  # STORAGE_EMULATOR_HOST: anonymous, no network
    assert BUCKET in [b.name for b in client.list_buckets()]
    blob = client.bucket(BUCKET).blob("client/hello.txt")
    blob.upload_from_string(b"hello")
    assert [b.name for b in client.list_blobs(BUCKET, prefix="client/")] == ["client/hello.txt"]
    assert blob.download_as_bytes() == b"hello"


def test_gcs_dataset_files_read_through_tf_gfile(gcs_emulator):
    from pmlv_utils import dataset_files

    gfile = _gfile()
    base = f"{GS}/files/flower_photos"
    gfile.makedirs(base)
    with gfile.GFile(f"{base}/dict.txt", "w") as f:
        f.write("\ufeffdaisy\nroses\n")  # with a byte-order mark, dropped
    lines = ["daisy/a.jpg,daisy", f"{GS}/other/roses/b.jpg,roses", "no label", "daisy/a.jpg,daisy"]
    with gfile.GFile(f"{base}/all_data.csv", "w") as f:
        f.write("\n".join(lines) + "\n")

    assert dataset_files.read_labels(f"{base}/dict.txt") == ["daisy", "roses"]
    rows = dataset_files.read_all_data(f"{base}/all_data.csv", report=None)
    assert [(r.path, r.problem) for r in rows] == [
        (f"{base}/daisy/a.jpg", None),  # relative to the CSV's gs:// folder
        (f"{GS}/other/roses/b.jpg", None),
        ("", dataset_files.MALFORMED_LINE),
        (f"{base}/daisy/a.jpg", dataset_files.DUPLICATE),
    ]
    # the split depends on <class>/<file> only: the same for a gs:// and a local copy
    assert dataset_files.split_for(rows[0].path) == dataset_files.split_for("/data/daisy/a.jpg")
    with pytest.raises(FileNotFoundError, match="data CSV not found"):
        dataset_files.read_all_data(f"{base}/missing.csv")


def test_gcs_workspace_publishes_and_swaps_gs_folders(gcs_emulator, tmp_path):
    from pmlv_utils import workspace

    gfile = _gfile()
    final, tmp = f"{GS}/ws/trained-abc", f"{GS}/ws/.trained-abc.build-1"
    for folder, text in ((final, "old"), (tmp, "new")):
        gfile.makedirs(f"{folder}/export")
        with gfile.GFile(f"{folder}/export/model.txt", "w") as f:
            f.write(text)
    with workspace.artifact_lock(final) as lock:
        assert lock is None  # object stores have no flock
    workspace.publish_folder(tmp, final)
    assert gfile.GFile(f"{final}/export/model.txt").read() == "new"
    assert not gfile.exists(tmp)

    source = tmp_path / "release"
    (source / "saved_model").mkdir(parents=True)
    (source / "saved_model" / "saved_model.pb").write_bytes(b"pb")
    target = f"{GS}/ws/deployed"
    assert workspace.swap_in(source, target) == target
    assert gfile.GFile(f"{target}/saved_model/saved_model.pb", "rb").read() == b"pb"
    copied = tmp_path / "back"
    workspace.copy_folder(target, str(copied))  # and back down
    assert (copied / "saved_model" / "saved_model.pb").read_bytes() == b"pb"
    assert workspace.display_path(f"{target}/saved_model") == f"{target}/saved_model"


@pytest.fixture(scope="module")
def gcs_flowers(gcs_emulator, tmp_path_factory):
    """A tiny synthetic data set uploaded to ``gs://pmlv-test/flowers/flower_photos`` with an
    all_data.csv of paths relative to it; returns that gs:// folder."""
    from pmlv_utils import synthetic, workspace

    local = tmp_path_factory.mktemp("gcs-flowers")
    made = synthetic.generate_dataset(local, images_per_class=8, seed=7, progress=False)
    photos = Path(made["flower_photos"])
    rows = Path(made["all_data_csv"]).read_text().splitlines()
    relative = [line.replace(f"{photos}/", "", 1) for line in rows]
    Path(made["all_data_csv"]).write_text("\n".join(relative) + "\n")
    target = f"{GS}/flowers/flower_photos"
    workspace.copy_folder(str(photos), target)
    return target


@pytest.fixture(scope="module")
def gcs_tfrecords(gcs_flowers):
    """The dataset job run on the gs:// CSV, writing to ``gs://pmlv-test/tfrecords``."""
    from pmlv_utils import tfrecords

    out = f"{GS}/tfrecords"
    config = tfrecords.DatasetJobConfig(
        all_data=f"{gcs_flowers}/all_data.csv",
        labels_file=f"{gcs_flowers}/dict.txt",
        output_dir=out,
        num_shards=2,
        fractions=CLASSES_PER_SPLIT,
        verbose=False,
    )
    return out, tfrecords.run_pipeline(config)


def test_gcs_dataset_job_reads_gs_csv_and_writes_gs_tfrecords(gcs_tfrecords, gcs_flowers):
    from pmlv_utils import tfrecords

    out, counts = gcs_tfrecords
    gfile = _gfile()
    assert counts["total_written"] == 40 and counts["total_rejected"] == 0
    assert all(n > 0 for n in counts["written"].values()), counts
    shards = tfrecords.output_files(out)
    assert len([s for s in shards if "/train-" in s]) == 2
    assert all(s.startswith(f"{out}/") for s in shards)
    assert tfrecords.count_records(f"{out}/train-*-of-*.gz") == counts["written"]["train"]
    record = tfrecords.read_records(f"{out}/valid-*-of-*.gz", limit=1)[0]
    assert record["path"].startswith(f"{gcs_flowers}/")  # resolved against the gs:// folder
    # dict.txt beside the shards: the trainer needs only --input_topdir
    assert gfile.GFile(f"{out}/dict.txt").read() == gfile.GFile(f"{gcs_flowers}/dict.txt").read()


def _subprocess_env() -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def gcs_job_dir(gcs_tfrecords):
    """The trainer CLI run with a gs:// job dir and only --input_topdir (1 epoch, 32 px)."""
    out, _ = gcs_tfrecords
    job_dir = f"{GS}/jobs/small_cnn"
    cmd = [sys.executable, "-m", "pmlv_utils.train", "--job-dir", job_dir]
    cmd += ["--input_topdir", out, "--num_epochs", "1", "--img_size", "32", "--batch_size", "8"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=_subprocess_env(), timeout=900, cwd=REPO
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return job_dir, done.stdout


@pytest.mark.slow
def test_gcs_trainer_writes_job_dir_and_export_to_gs(gcs_job_dir):
    job_dir, stdout = gcs_job_dir
    gfile = _gfile()
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["epochs_run"] == 1
    for name in ("metrics.json", "checkpoints/best.keras", "training_curves.png"):
        assert gfile.exists(f"{job_dir}/{name}"), name
    assert gfile.exists(f"{job_dir}/export/saved_model.pb")
    metrics = json.loads(gfile.GFile(f"{job_dir}/metrics.json").read())
    assert metrics["labels"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert f"copied to {job_dir}" in stdout
    # the TensorBoard logs came along: `tensorboard --logdir gs://…/tensorboard` reads them
    assert gfile.glob(f"{job_dir}/tensorboard/train/events.out.tfevents.*")


@pytest.mark.slow
def test_gcs_server_loads_gs_export_and_reads_a_gs_allowed_root(gcs_job_dir, gcs_flowers):
    from pmlv_utils import serving

    job_dir, _ = gcs_job_dir
    gfile = _gfile()
    image = sorted(gfile.glob(f"{gcs_flowers}/roses/*.jpg"))[0]
    server = serving.start_server(f"{job_dir}/export", allowed_roots=[gcs_flowers], timeout=300)
    try:
        row = server.predict([image])[0]
        assert row["flower_type_str"] in ("daisy", "dandelion", "roses", "sunflowers", "tulips")
        assert abs(sum(row["probability"]) - 1) < 1e-4
        outside = server.post("predict", {"instances": [f"{GS}/tfrecords/dict.txt"]})
        assert outside.status_code == 403, outside.text
    finally:
        server.stop()
