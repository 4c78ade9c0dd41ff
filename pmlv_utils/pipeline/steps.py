"""What each pipeline step does: plain functions, which the kfp components only call.

    create_dataset_step  the chapter 5 Beam job: all_data.csv (or synthetic data) -> TFRecords
    train_step           the chapter 7 trainer -> a trainer job dir (no export)
    export_step          the best checkpoint -> SavedModel with the serving signatures
    evaluate_step        accuracy + confusion matrix of the exported model on one split
    probe_data_dir       the explanation check's probe images (the unbiased synthetic set)
    explain_check_step   the background share of the exported model's IG evidence on them
    deploy_step          SavedModel + float32 TFLite, swapped in atomically; optionally Vertex AI
    deploy_to_vertex     upload a gs:// SavedModel to Vertex AI and deploy it to an endpoint

Importing this module stays light: each step imports the stage it runs (TensorFlow, Beam, Keras)
inside its function. ``pmlv_utils.pipeline`` is imported by processes that run no stage (the
notebook kernel, the local runner's parent, the ``fingerprint-inputs`` step), and TensorFlow
alone takes 15 s to import on a 2-core machine; each step's own subprocess loads only its stage.
The Google Cloud SDK (``aiplatform``, 10 s to import) is imported only on the cloud path.
"""

import json
import shutil
import tempfile
from pathlib import Path

from .. import dataset_files
from .. import workspace as ws

# A prebuilt Vertex AI prediction container that serves a TF SavedModel.
VERTEX_SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
TFLITE_NAME = "model_float32.tflite"
LABELS_NAME = "dict.txt"


def _gfile():
    import tensorflow as tf  # only for gs:// paths (see the module docstring)

    return tf.io.gfile


def file_exists(path: str) -> bool:
    """Whether a local or gs:// file exists."""
    if dataset_files.has_scheme(path):
        return _gfile().exists(path)
    return Path(path).exists()


def read_bytes(path: str) -> bytes:
    """The bytes of a local or gs:// file."""
    if dataset_files.has_scheme(path):
        with _gfile().GFile(path, "rb") as f:
            return f.read()
    return Path(path).read_bytes()


def default_labels_file(data_csv: str) -> str:
    """``dict.txt`` next to the CSV: where the labels are when no ``labels_file`` is given."""
    return f"{dataset_files.csv_folder(data_csv).rstrip('/')}/{LABELS_NAME}"


def _dataset_inputs(
    data_csv: str,
    labels_file: str,
    images_per_class: int,
    seed: int,
    workspace: str,
    difficulty: str = ws.DEFAULT_DIFFICULTY,
) -> tuple[str, str, str]:
    """(CSV, labels file, source description) of the data the dataset step reads."""
    if not data_csv:
        data_dir = ws.ensure_dataset(
            images_per_class, seed, workspace=workspace or None, difficulty=difficulty
        )
        csv_path, labels_path = (str(p) for p in ws.dataset_files(data_dir))
        source = f"synthetic ({difficulty}): {images_per_class} images per class, seed {seed}"
        return csv_path, labels_path, source
    return data_csv, labels_file or default_labels_file(data_csv), data_csv


def _usable_rows(csv_path: str, labels_path: str) -> list:
    """The CSV's lines, after checking that the CSV and labels exist and one line is usable."""
    if not file_exists(csv_path):
        raise FileNotFoundError(
            f"create-dataset: the data CSV does not exist: {csv_path} (pipeline parameter data_csv)"
        )
    if not file_exists(labels_path):
        raise FileNotFoundError(
            f"create-dataset: the labels file does not exist: {labels_path} "
            "(pipeline parameter labels_file; default: dict.txt next to the CSV)"
        )
    rows = dataset_files.read_all_data(csv_path, report=print)
    if not any(not r.problem for r in rows):
        raise ValueError(
            f"create-dataset: the data CSV has no usable line ({len(rows)} lines, all "
            f"empty or malformed): {csv_path}"
        )
    return rows


def create_dataset_step(
    output_dir: str,
    data_csv: str = "",
    labels_file: str = "",
    images_per_class: int = ws.DEFAULT_IMAGES_PER_CLASS,
    seed: int = ws.DEFAULT_SEED,
    runner: str = "DirectRunner",
    project: str = "",
    region: str = "us-central1",
    workspace: str = "",
    difficulty: str = ws.DEFAULT_DIFFICULTY,
) -> dict:
    """The chapter 5 Beam job: ``data_csv`` (or the synthetic set) -> TFRecords in ``output_dir``.

    Empty ``data_csv`` means the synthetic data set (``images_per_class``, ``seed``,
    ``difficulty``), built or reused in the workspace. ``labels_file`` defaults to ``dict.txt``
    next to the CSV. The job writes the labels to ``output_dir/dict.txt``, so later steps need
    nothing but this folder. Returns {counts (flat: train, valid, test, rejected), source,
    labels}. Raises, naming the file, when the CSV or labels are missing or the CSV has no
    usable line, and when no training example came out (every line dead-lettered).
    """
    csv_path, labels_path, source = _dataset_inputs(
        data_csv, labels_file, images_per_class, seed, workspace, difficulty
    )
    rows = _usable_rows(csv_path, labels_path)
    from .. import tfrecords  # Beam and TensorFlow: only once the input is known to be there

    result = tfrecords.run_pipeline(
        tfrecords.DatasetJobConfig(
            all_data=csv_path,
            labels_file=labels_path,
            output_dir=output_dir,
            runner=runner,
            project_id=project or None,
            region=region,
            wait=True,
        )
    )
    counts = {split: int(n) for split, n in result["written"].items()}
    counts["rejected"] = int(result["total_rejected"])
    if not counts.get("train"):
        raise ValueError(
            f"create-dataset: no training example was written from {csv_path}: "
            f"{counts['rejected']} of {len(rows)} lines went to the dead-letter output "
            f"(errors-*.jsonl; reasons {result['rejected']})"
        )
    labels = dataset_files.read_labels(labels_path)
    return dict(counts=counts, source=source, labels=labels, rejected=result["rejected"])


def train_step(
    tfrecords_dir: str, job_dir: str, img_size: int, epochs: int, model_kind: str, seed: int
) -> dict:
    """The chapter 7 trainer on the step's TFRecords (no export: that is the next step)."""
    from .. import training

    config = training.TrainConfig(
        img_size=img_size, num_epochs=epochs, model_kind=model_kind, seed=seed
    )
    return training.train_and_export(
        job_dir, tfrecords_dir, str(Path(tfrecords_dir) / LABELS_NAME), config, export=False
    )


def export_step(job_dir: str, export_dir: str) -> dict:
    """The best checkpoint of a trainer job dir as a SavedModel with the serving signatures."""
    import keras

    from .. import export, tflite
    from ..preprocess import RandomCropOrCenter  # noqa: F401  (registers the layer for loading)

    metrics = json.loads((Path(job_dir) / "metrics.json").read_text())
    settings = metrics["settings"]
    best = keras.models.load_model(Path(job_dir) / "checkpoints" / "best.keras")
    export.export_saved_model(
        best,
        export_dir,
        metrics["labels"],
        settings["img_size"],
        settings["model_kind"],
        extra_info=dict(best_epoch=metrics["best_epoch"], val_accuracy=metrics["val_accuracy"]),
    )
    return dict(
        img_size=settings["img_size"],
        model_kind=settings["model_kind"],
        size_bytes=tflite.savedmodel_size_bytes(export_dir),
    )


def evaluate_step(export_dir: str, tfrecords_dir: str, split: str = "test") -> dict:
    """Accuracy and confusion matrix of the exported model on one split (training.evaluate)."""
    from .. import export, training

    info = export.read_model_info(export_dir)
    return training.evaluate(
        export_dir,
        dataset_files.split_pattern(tfrecords_dir, split),
        info["img_size"],
        info["labels"],
    )


def probe_data_dir(
    probe_dir: str, images_per_class: int, seed: int, workspace: str, difficulty: str
) -> Path:
    """The explanation check's probe images: ``probe_dir`` (a folder of ``ensure_dataset``,
    with masks), or the unbiased synthetic set of these settings (built or reused), whose test
    split no model of the pipeline trained on."""
    if probe_dir:
        return Path(probe_dir)
    return ws.ensure_dataset(
        images_per_class, seed, workspace=workspace or None, difficulty=difficulty
    )


def explain_check_step(
    export_dir: str, probe_dir: str | Path, per_class: int = 20, ig_steps: int = 16
) -> dict:
    """The background share of the exported model's explanations on a probe set.

    For each class, IG (black baseline) explains that class's probability on every probe
    image (the test split of ``probe_dir``, at most ``per_class`` images per class); the share
    of all the positive evidence that falls off the flowers, inside the model's field of view
    (:func:`pmlv_utils.explain.pooled_background_share`). Returns the worst class's share
    (``background_share``, the gate's input), every class's, the background's share of the
    pixels (chance) and the probe's size.
    """
    import numpy as np

    from .. import explain  # TensorFlow: see the module docstring

    model = explain.ExplainableModel.from_saved_model(export_dir)
    probes = explain.load_examples(probe_dir, model.img_size[0], "test", per_class=per_class)
    if model.labels and list(model.labels) != list(probes.labels):
        raise ValueError(
            f"explain-check: the probe set's labels {probes.labels} are not the model's "
            f"{list(model.labels)} ({probe_dir})"
        )
    fov = model.field_of_view
    by_class = {}
    for c, label in enumerate(probes.labels):
        targets = np.full(len(probes.images), c)
        maps = explain.explain(probes.images, targets, "ig", model, steps=ig_steps).attributions
        by_class[label] = explain.pooled_background_share(maps, probes.masks, fov)
    worst = max(by_class, key=lambda k: by_class[k])
    chance = float(1 - fov.crop(probes.masks).mean())
    return dict(
        background_share=by_class[worst],
        worst_class=worst,
        by_class=by_class,
        background_area=chance,
        probe_images=len(probes.images),
    )


def _build_deployment(export_dir: str, out: Path) -> dict:
    """``out`` = ``saved_model/`` + the float32 TFLite file + ``deploy_info.json``, built in a
    temporary folder of its own next to it and published by one rename, under ``out``'s lock
    (:func:`pmlv_utils.workspace.publish_folder`)."""
    from .. import tflite

    out.parent.mkdir(parents=True, exist_ok=True)
    with ws.artifact_lock(out):
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
        try:
            shutil.copytree(tflite.check_export_dir(export_dir), staging / "saved_model")
            tflite.convert(staging / "saved_model", staging, kinds=["float32"])
            info = dict(
                tflite_bytes=(staging / TFLITE_NAME).stat().st_size,
                savedmodel_bytes=tflite.savedmodel_size_bytes(staging / "saved_model"),
            )
            (staging / "deploy_info.json").write_text(json.dumps(info, indent=1))
            ws.publish_folder(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already once published
    return info


def deploy_step(
    export_dir: str,
    output_dir: str,
    deploy_dir: str = "",
    project: str = "",
    region: str = "us-central1",
    endpoint_name: str = "flowers",
    serving_image: str = VERTEX_SERVING_IMAGE,
    export_uri: str = "",
) -> dict:
    """Deploy an exported model.

    Locally: ``output_dir`` gets ``saved_model/`` (what the local model server serves) and a float32
    TFLite file (edge devices); with ``deploy_dir``, it is switched in by one atomic step
    (:func:`pmlv_utils.workspace.swap_in`: ``deploy_dir`` is a symlink to a release folder,
    replaced by ``os.replace``; the last ``workspace.KEEP_RELEASES`` releases are kept), so a
    reader sees the old model or the new one, never half of one, never none. With ``project``:
    also uploads ``export_uri`` (the gs:// SavedModel) to Vertex AI and deploys it to an endpoint.
    """
    out = Path(output_dir)
    info = _build_deployment(export_dir, out)
    if deploy_dir:
        info["release_dir"] = ws.swap_in(out, deploy_dir)
        info["deploy_dir"] = str(deploy_dir)
    if project:
        info.update(
            deploy_to_vertex(
                export_uri or str(out / "saved_model"),
                project,
                region,
                endpoint_name,
                serving_image,
            )
        )
    return info


def deploy_to_vertex(
    model_uri: str,
    project: str,
    region: str,
    endpoint_name: str = "flowers",
    serving_image: str = VERTEX_SERVING_IMAGE,
    machine_type: str = "n1-standard-2",
) -> dict:
    """Upload a SavedModel (gs://) to Vertex AI and deploy it to an endpoint (created if needed)."""
    from google.cloud import aiplatform  # the cloud path only (see the module docstring)

    if not model_uri.startswith("gs://"):
        raise ValueError(
            f"deploy-model: Vertex AI needs the model on GCS (gs://...), got {model_uri}"
        )
    aiplatform.init(project=project, location=region)
    endpoints = aiplatform.Endpoint.list(filter=f'display_name="{endpoint_name}"')
    endpoint = endpoints[0] if endpoints else aiplatform.Endpoint.create(display_name=endpoint_name)
    model = aiplatform.Model.upload(
        display_name=endpoint_name,
        artifact_uri=model_uri,
        serving_container_image_uri=serving_image,
    )
    model.deploy(endpoint=endpoint, machine_type=machine_type, traffic_percentage=100)
    return dict(vertex_model=model.resource_name, vertex_endpoint=endpoint.resource_name)
