"""The course as a Kubeflow pipeline (kfp v2): dataset -> train -> export -> evaluate -> gate -> deploy.

Lightweight Python components, each a thin wrapper around a ``*_step`` function of this module
(which calls the rest of pmlv_utils), so the same code runs

* locally, in kfp's local runner (``kfp.local.SubprocessRunner(use_venv=False)``: every step is
  a subprocess of this Python; no Docker needed) -- :func:`run_local`;
* on Vertex AI Pipelines or a Kubeflow cluster, where every step runs in the course image
  (:data:`BASE_IMAGE`, built from the repo's Dockerfile) -- :func:`submit`.

Steps (task names in the compiled YAML):

    create-dataset  the chapter 5 Beam job (DirectRunner locally, DataflowRunner in the cloud):
                    all_data.csv -> TFRecords (train/valid/test + dead-letter errors-*.jsonl)
    train-model     the chapter 7 trainer -> trainer job dir (checkpoints, curves, metrics)
    export-model    the SavedModel with the serving signatures (chapter 7/9)
    evaluate-model  test accuracy + confusion matrix of the EXPORTED model (its ``xai_model``
                    signature on the test TFRecords): what is tested is what is shipped
    deploy-model    only when accuracy >= accuracy_threshold (``dsl.If``): locally, a folder with
                    the SavedModel and a float32 TFLite file, swapped in atomically; with a
                    project, also a Vertex AI model upload + endpoint

Caching. kfp's local runner caches (``kfp.local.init(enable_caching=True)``, kfp >= 2.17), as
Vertex AI does: a task whose component, image and input *values* are unchanged is not run again.
Values, not contents: the same CSV path with new lines in it, or an edited training.py, would be
a cache hit. So a sixth, never-cached task, ``fingerprint-inputs``, hashes the data (the CSV, its
labels and every image it lists) and, for each step, the pmlv_utils modules that step runs; each
step takes its hashes as inputs. Unchanged data and code -> the same inputs -> cached.
One quirk of kfp 2.17's local cache: an entry whose output artifact has no file is treated as a
miss, so the steps that log Metrics also write them to the artifact's file. Deploy is never
cached (it has effects outside its artifact).
"""

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from . import workspace as ws

PIPELINE_NAME = "flowers-pipeline"
# The course image (docker build -t $BASE_IMAGE . && docker push $BASE_IMAGE): what every step
# runs in on Vertex / Kubeflow. Replace YOUR_PROJECT, or pass base_image= to make_pipeline().
BASE_IMAGE = "us-central1-docker.pkg.dev/YOUR_PROJECT/pmlv/practical-ml-vision:latest"
# A prebuilt Vertex AI prediction container that serves a TF SavedModel.
VERTEX_SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
STEPS = ("create-dataset", "train-model", "export-model", "evaluate-model", "deploy-model")
FINGERPRINT_STEP = "fingerprint-inputs"
ALL_TASKS = (FINGERPRINT_STEP, *STEPS)
# The pmlv_utils modules each step runs (their imports inside pmlv_utils are followed too).
STEP_MODULES = {
    "create-dataset": ("tfrecords", "dataset_files", "synthetic", "workspace"),
    "train-model": ("training",),
    "export-model": ("export", "tflite"),
    "evaluate-model": ("training", "export"),
}
FINGERPRINT_OUTPUTS = ("data_version", "dataset_code", "train_code", "export_code", "evaluate_code")
GATE_NAME = "accuracy-gate"
COMPILED_PIPELINE = ws.REPO_ROOT / "10_mlops" / "pipeline" / "flowers_pipeline.yaml"
DEFAULT_ACCURACY_THRESHOLD = 0.7
DEFAULT_MODEL_KIND = "small_cnn"
TFLITE_NAME = "model_float32.tflite"
LABELS_NAME = "dict.txt"


# --------------------------------------------------------------------------------------
# What each step does (plain functions: the components below only call these)
# --------------------------------------------------------------------------------------


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _exists(path: str) -> bool:
    if "://" in path:
        return _gfile().exists(path)
    return Path(path).exists()


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
    next to the CSV. Copies the labels to ``output_dir/dict.txt`` so later steps need nothing
    but this folder. Returns
    {counts (flat: train, valid, test, rejected), source, labels}. Raises, naming the file, when
    the CSV or labels are missing or the CSV has no usable line, and when no training example
    came out (every line dead-lettered).
    """
    from . import dataset_files

    if not data_csv:
        data_dir = ws.ensure_dataset(
            images_per_class, seed, workspace=workspace or None, difficulty=difficulty
        )
        csv_path, labels_path = (str(p) for p in ws.dataset_files(data_dir))
        source = f"synthetic ({difficulty}): {images_per_class} images per class, seed {seed}"
    else:
        csv_path = data_csv
        labels_path = (
            labels_file or f"{dataset_files.csv_folder(data_csv).rstrip('/')}/{LABELS_NAME}"
        )
        source = data_csv
    if not _exists(csv_path):
        raise FileNotFoundError(
            f"create-dataset: the data CSV does not exist: {csv_path} (pipeline parameter data_csv)"
        )
    if not _exists(labels_path):
        raise FileNotFoundError(
            f"create-dataset: the labels file does not exist: {labels_path} "
            "(pipeline parameter labels_file; default: dict.txt next to the CSV)"
        )
    rows = dataset_files.read_all_data(csv_path, report=print)
    usable = [r for r in rows if not r.problem]
    if not usable:
        raise ValueError(
            f"create-dataset: the data CSV has no usable line ({len(rows)} lines, all "
            f"empty or malformed): {csv_path}"
        )
    from . import tfrecords  # Beam and TensorFlow: only once the input is known to be there

    result = tfrecords.run_pipeline(
        all_data=csv_path,
        labels_file=labels_path,
        output_dir=output_dir,
        runner=runner,
        project_id=project or None,
        region=region,
        wait=True,
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
    with _gfile().GFile(f"{output_dir.rstrip('/')}/{LABELS_NAME}", "w") as f:
        f.write("\n".join(labels) + "\n")
    return dict(counts=counts, source=source, labels=labels, rejected=result["rejected"])


def train_step(
    tfrecords_dir: str, job_dir: str, img_size: int, epochs: int, model_kind: str, seed: int
) -> dict:
    """The chapter 7 trainer on the step's TFRecords (no export: that is the next step)."""
    from . import training

    return training.train_and_export(
        job_dir=job_dir,
        input_topdir=tfrecords_dir,
        labels_file=str(Path(tfrecords_dir) / LABELS_NAME),
        img_size=img_size,
        num_epochs=epochs,
        model_kind=model_kind,
        seed=seed,
        export=False,
    )


def export_step(job_dir: str, export_dir: str) -> dict:
    """The best checkpoint of a trainer job dir as a SavedModel with the serving signatures."""
    import keras

    from . import export, tflite
    from .preprocess import RandomCropOrCenter  # noqa: F401  (registers the layer for loading)

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
    from . import dataset_files, export, training

    info = export.read_model_info(export_dir)
    return training.evaluate(
        export_dir,
        dataset_files.split_pattern(tfrecords_dir, split),
        info["img_size"],
        info["labels"],
    )


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
    TFLite file (edge devices); with ``deploy_dir``, that folder is then replaced by it in one
    rename, so a reader sees the old model or the new one, never half of one. With ``project``:
    also uploads ``export_uri`` (the gs:// SavedModel) to Vertex AI and deploys it to an endpoint.
    """
    from . import tflite

    out = Path(output_dir)
    staging = out.parent / f".{out.name}.staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shutil.copytree(tflite.check_export_dir(export_dir), staging / "saved_model")
    tflite.convert(staging / "saved_model", staging, kinds=["float32"])
    info = dict(
        tflite_bytes=(staging / TFLITE_NAME).stat().st_size,
        savedmodel_bytes=tflite.savedmodel_size_bytes(staging / "saved_model"),
    )
    (staging / "deploy_info.json").write_text(json.dumps(info, indent=1))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    if deploy_dir:
        _swap_in(out, Path(deploy_dir))
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


def _swap_in(source: Path, target: Path) -> None:
    """Replace folder ``target`` by a copy of ``source``; the switch is one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.parent / f".{target.name}.incoming"
    previous = target.parent / f".{target.name}.previous"
    for stale in (incoming, previous):
        if stale.exists():
            shutil.rmtree(stale)
    shutil.copytree(source, incoming)
    if target.exists():
        target.rename(previous)
    incoming.rename(target)
    if previous.exists():
        shutil.rmtree(previous)


def deploy_to_vertex(
    model_uri: str,
    project: str,
    region: str,
    endpoint_name: str = "flowers",
    serving_image: str = VERTEX_SERVING_IMAGE,
    machine_type: str = "n1-standard-2",
) -> dict:
    """Upload a SavedModel (gs://) to Vertex AI and deploy it to an endpoint (created if needed)."""
    from google.cloud import aiplatform

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


# --------------------------------------------------------------------------------------
# Versions of the inputs (so that caching is keyed on contents, not on names)
# --------------------------------------------------------------------------------------


def _hash_file(h, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def _read_bytes(path: str) -> bytes:
    if "://" in path:
        with _gfile().GFile(path, "rb") as f:
            return f.read()
    return Path(path).read_bytes()


def data_fingerprint(data_csv: str, labels_file: str = "") -> str:
    """A content hash of a data set: the CSV, its labels file and every local image it lists.

    For gs:// data only the CSV and labels text are hashed (reading every image would be slow).
    Returns ``"missing"`` when the CSV does not exist (the dataset step then reports it).
    """
    from . import dataset_files

    if not _exists(data_csv):
        return "missing"
    labels = labels_file or f"{dataset_files.csv_folder(data_csv).rstrip('/')}/{LABELS_NAME}"
    h = hashlib.sha256()
    csv_bytes = _read_bytes(data_csv)
    h.update(csv_bytes + b"\0")
    h.update((_read_bytes(labels) if _exists(labels) else b"") + b"\0")
    base = dataset_files.csv_folder(data_csv)
    for number, line in enumerate(csv_bytes.decode("utf-8", "replace").splitlines(), start=1):
        row = dataset_files.parse_csv_line(number, line, base)
        if not row.problem and "://" not in row.path and Path(row.path).is_file():
            _hash_file(h, Path(row.path))
    return h.hexdigest()[:16]


def _module_closure(names, opaque=("workspace",)) -> list[Path]:
    """The files of pmlv_utils modules ``names`` and of every pmlv_utils module they import.

    Imports inside ``opaque`` modules are not followed (workspace imports every stage lazily;
    a step that uses it for one thing lists the modules that thing needs).
    """
    import ast

    package = Path(__file__).parent
    todo, seen = list(names), {}
    while todo:
        name = todo.pop()
        path = package / f"{name}.py"
        if name in seen or not path.is_file():
            continue
        seen[name] = path
        if name in opaque:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo.extend(
                    [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                )
    return sorted(seen.values())


def code_fingerprint(step: str) -> str:
    """A hash of the code a step runs: its ``*_step`` function here and the modules it uses."""
    import inspect

    h = hashlib.sha256()
    h.update(inspect.getsource(_STEP_FUNCTIONS[step]).encode())
    for path in _module_closure(STEP_MODULES[step]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A content hash of every file under ``folder`` (names and bytes)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        _hash_file(h, path)
    return h.hexdigest()[:16]


_STEP_FUNCTIONS = {
    "create-dataset": create_dataset_step,
    "train-model": train_step,
    "export-model": export_step,
    "evaluate-model": evaluate_step,
}


# --------------------------------------------------------------------------------------
# The components and the pipeline
# --------------------------------------------------------------------------------------


def fingerprint_inputs(data_csv: str, labels_file: str) -> NamedTuple(
    "Fingerprints",
    data_version=str,
    dataset_code=str,
    train_code=str,
    export_code=str,
    evaluate_code=str,
):
    """Content hashes of the data and of each step's code (never cached: it must look every time)."""
    from typing import NamedTuple

    from pmlv_utils import pipeline

    data = pipeline.data_fingerprint(data_csv, labels_file) if data_csv else "synthetic"
    codes = [pipeline.code_fingerprint(step) for step in pipeline.STEP_MODULES]
    print(
        f"data {data}; code " + ", ".join(f"{s} {c}" for s, c in zip(pipeline.STEP_MODULES, codes))
    )
    return NamedTuple(
        "Fingerprints",
        data_version=str,
        dataset_code=str,
        train_code=str,
        export_code=str,
        evaluate_code=str,
    )(data, *codes)


def create_dataset(
    data_csv: str,
    labels_file: str,
    images_per_class: int,
    seed: int,
    data_version: str,
    code_version: str,
    runner: str,
    project: str,
    region: str,
    workspace: str,
    difficulty: str,
    tfrecords: Output[Dataset],
):
    """Chapter 5: all_data.csv (or synthetic data) -> TFRecords, with the Beam job."""
    from pmlv_utils import pipeline

    out = tfrecords.uri if runner == "DataflowRunner" else tfrecords.path
    result = pipeline.create_dataset_step(
        *(out, data_csv, labels_file, images_per_class, seed, runner, project, region),
        *(workspace, difficulty),
    )
    tfrecords.metadata.update(result["counts"])
    tfrecords.metadata["source"] = result["source"]
    tfrecords.metadata["data_version"] = data_version


def train_model(
    tfrecords: Input[Dataset],
    img_size: int,
    epochs: int,
    model_kind: str,
    seed: int,
    code_version: str,
    trained: Output[Model],
    training_metrics: Output[Metrics],
):
    """Chapter 7: the trainer; the Model artifact is its job dir (checkpoints, curves, metrics)."""
    from pmlv_utils import pipeline, safe_io

    metrics = pipeline.train_step(tfrecords.path, trained.path, img_size, epochs, model_kind, seed)
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    for name, value in scalars.items():
        training_metrics.log_metric(name, value)
    safe_io.write_json(training_metrics.path, scalars)
    trained.metadata.update(dict(img_size=img_size, epochs=epochs, model_kind=model_kind))


def export_model(trained: Input[Model], code_version: str, exported: Output[Model]):
    """Chapter 7/9: the SavedModel with the serving signatures."""
    from pmlv_utils import pipeline

    exported.metadata.update(pipeline.export_step(trained.path, exported.path))


def evaluate_model(
    exported: Input[Model],
    tfrecords: Input[Dataset],
    code_version: str,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
) -> float:
    """Test accuracy and confusion matrix of the exported model; returns the accuracy (the gate's input)."""
    from pmlv_utils import pipeline, safe_io

    result = pipeline.evaluate_step(exported.path, tfrecords.path)
    metrics.log_metric("test_accuracy", result["accuracy"])
    metrics.log_metric("test_images", result["n"])
    confusion.log_confusion_matrix(result["labels"], result["confusion_matrix"])
    safe_io.write_json(
        metrics.path, dict(test_accuracy=result["accuracy"], test_images=result["n"])
    )
    safe_io.write_json(
        confusion.path, dict(labels=result["labels"], matrix=result["confusion_matrix"])
    )
    print(f"test accuracy {result['accuracy']:.3f} on {result['n']} images")
    return result["accuracy"]


def deploy_model(
    exported: Input[Model],
    deploy_dir: str,
    project: str,
    region: str,
    endpoint_name: str,
    deployed: Output[Model],
):
    """Locally: SavedModel + TFLite in deploy_dir; with a project: a Vertex AI endpoint too."""
    from pmlv_utils import pipeline

    info = pipeline.deploy_step(
        exported.path,
        deployed.path,
        deploy_dir,
        project,
        region,
        endpoint_name,
        export_uri=exported.uri,
    )
    deployed.metadata.update(info)


def make_pipeline(base_image: str = BASE_IMAGE):
    """The pipeline function, its components built on ``base_image``."""

    def component(fn):
        return dsl.component(fn, base_image=base_image, install_kfp_package=False)

    fingerprint_op = component(fingerprint_inputs)
    create_dataset_op = component(create_dataset)
    train_op = component(train_model)
    export_op = component(export_model)
    evaluate_op = component(evaluate_model)
    deploy_op = component(deploy_model)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Flowers: create dataset (Beam) -> train -> export -> evaluate -> "
        "deploy when test accuracy passes the gate",
    )
    def flowers_pipeline(
        data_csv: str = "",
        labels_file: str = "",
        images_per_class: int = ws.DEFAULT_IMAGES_PER_CLASS,
        seed: int = ws.DEFAULT_SEED,
        img_size: int = ws.DEFAULT_IMG_SIZE,
        epochs: int = ws.DEFAULT_EPOCHS,
        model_kind: str = DEFAULT_MODEL_KIND,
        accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD,
        runner: str = "DirectRunner",
        project: str = "",
        region: str = "us-central1",
        deploy_dir: str = "",
        endpoint_name: str = "flowers",
        workspace: str = "",
        difficulty: str = ws.DEFAULT_DIFFICULTY,
    ) -> NamedTuple(
        "PipelineOutputs",
        tfrecords=Dataset,
        trained=Model,
        exported=Model,
        metrics=Metrics,
        confusion=ClassificationMetrics,
        accuracy=float,
        data_version=str,
        dataset_code=str,
        train_code=str,
        export_code=str,
        evaluate_code=str,
    ):
        versions = fingerprint_op(data_csv=data_csv, labels_file=labels_file).set_caching_options(
            False
        )
        dataset = create_dataset_op(
            data_csv=data_csv,
            labels_file=labels_file,
            images_per_class=images_per_class,
            seed=seed,
            data_version=versions.outputs["data_version"],
            code_version=versions.outputs["dataset_code"],
            runner=runner,
            project=project,
            region=region,
            workspace=workspace,
            difficulty=difficulty,
        )
        trained = train_op(
            tfrecords=dataset.outputs["tfrecords"],
            img_size=img_size,
            epochs=epochs,
            model_kind=model_kind,
            seed=seed,
            code_version=versions.outputs["train_code"],
        )
        exported = export_op(
            trained=trained.outputs["trained"], code_version=versions.outputs["export_code"]
        )
        evaluated = evaluate_op(
            exported=exported.outputs["exported"],
            tfrecords=dataset.outputs["tfrecords"],
            code_version=versions.outputs["evaluate_code"],
        )
        # The gate reads the single unnamed float output: kfp 2.17's local runner resolves a
        # condition on a task output only when it is "Output" (a NamedTuple field is not found).
        with dsl.If(evaluated.outputs["Output"] >= accuracy_threshold, name=GATE_NAME):
            deploy_op(
                exported=exported.outputs["exported"],
                deploy_dir=deploy_dir,
                project=project,
                region=region,
                endpoint_name=endpoint_name,
            ).set_caching_options(False)
        outputs = NamedTuple(
            "PipelineOutputs",
            tfrecords=Dataset,
            trained=Model,
            exported=Model,
            metrics=Metrics,
            confusion=ClassificationMetrics,
            accuracy=float,
            data_version=str,
            dataset_code=str,
            train_code=str,
            export_code=str,
            evaluate_code=str,
        )
        return outputs(
            dataset.outputs["tfrecords"],
            trained.outputs["trained"],
            exported.outputs["exported"],
            evaluated.outputs["metrics"],
            evaluated.outputs["confusion"],
            evaluated.outputs["Output"],
            *(versions.outputs[k] for k in FINGERPRINT_OUTPUTS),
        )

    return flowers_pipeline


# --------------------------------------------------------------------------------------
# Compile, read back, draw
# --------------------------------------------------------------------------------------


def compile_pipeline(
    path: str | os.PathLike = COMPILED_PIPELINE, base_image: str = BASE_IMAGE
) -> Path:
    """Compile the pipeline to YAML (what Vertex AI Pipelines / Kubeflow run)."""
    from kfp import compiler

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(make_pipeline(base_image), str(path))
    return path


def load_compiled(path: str | os.PathLike = COMPILED_PIPELINE):
    """The compiled pipeline, loaded back with kfp (a component whose ``pipeline_spec`` is the DAG)."""
    from kfp import components

    if not Path(path).is_file():
        raise FileNotFoundError(f"no compiled pipeline at {path}: run pipeline.compile_pipeline()")
    return components.load_component_from_file(str(path))


def pipeline_graph(
    path: str | os.PathLike = COMPILED_PIPELINE,
) -> tuple[list[str], list[tuple[str, str]]]:
    """(nodes, edges) of the compiled pipeline's DAG, read from its pipeline spec.

    Condition groups (``dsl.If``) appear as a node named after the group's display name, with
    an edge to each task inside it.
    """
    spec = load_compiled(path).pipeline_spec
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []

    def walk(dag, prefix_parent: str | None) -> None:
        for name, task in dag.tasks.items():
            component = spec.components[task.component_ref.name]
            label = task.task_info.name or name
            is_group = component.WhichOneof("implementation") == "dag"
            node = label if is_group else name
            nodes.append(node)
            for upstream in task.dependent_tasks:
                edges.append((upstream, node))
            if prefix_parent and not task.dependent_tasks:
                edges.append((prefix_parent, node))
            if is_group:
                walk(component.dag, node)

    walk(spec.root.dag, None)
    return nodes, edges


def pipeline_steps(path: str | os.PathLike = COMPILED_PIPELINE) -> list[str]:
    """The component tasks of the compiled pipeline, in an order that respects their edges."""
    import networkx as nx

    nodes, edges = pipeline_graph(path)
    graph = nx.DiGraph(edges)
    graph.add_nodes_from(nodes)
    spec = load_compiled(path).pipeline_spec
    groups = {
        t.task_info.name
        for t in spec.root.dag.tasks.values()
        if spec.components[t.component_ref.name].WhichOneof("implementation") == "dag"
    }
    return [n for n in nx.lexicographical_topological_sort(graph) if n not in groups]


def describe_steps(path: str | os.PathLike = COMPILED_PIPELINE):
    """A table of the compiled pipeline's steps: inputs, outputs, cached or not, when it runs."""
    import pandas as pd

    spec = load_compiled(path).pipeline_spec
    rows = []

    def walk(dag, gate: str = "") -> None:
        for name, task in dag.tasks.items():
            component = spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                walk(component.dag, task.task_info.name)
                continue
            inputs, outputs = component.input_definitions, component.output_definitions
            rows.append(
                dict(
                    step=name,
                    artifacts_in=", ".join(sorted(inputs.artifacts)),
                    parameters_in=", ".join(sorted(inputs.parameters)),
                    outputs=", ".join(sorted([*outputs.artifacts, *outputs.parameters])),
                    cached=bool(task.caching_options.enable_cache),
                    runs=f"if {gate} passes" if gate else "always",
                )
            )

    walk(spec.root.dag)
    return pd.DataFrame(rows).set_index("step").loc[pipeline_steps(path)]


_STATUS_COLOURS = {
    "ran": "#8fd18f",
    "cached": "#9ec9ef",
    "skipped": "#dddddd",
    "failed": "#f08c8c",
    "not run": "#ffffff",
}


def plot_pipeline(
    path: str | os.PathLike = COMPILED_PIPELINE, run: "PipelineRun | None" = None, ax=None
):
    """Draw the compiled DAG left to right; with ``run``, colour each step by what it did there
    (ran / cached / skipped / failed) and write its time under it."""
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    nodes, edges = pipeline_graph(path)
    graph = nx.DiGraph(edges)
    graph.add_nodes_from(nodes)
    layer = {n: i for i, names in enumerate(nx.topological_generations(graph)) for n in names}
    if ax is None:
        _, ax = plt.subplots(figsize=(1.9 * (max(layer.values()) + 1), 2.4))
    results = {s.step: s for s in run.steps} if run else {}
    width, height = 1.5, 0.55
    for name, x in layer.items():
        result = results.get(name)
        colour = (
            _STATUS_COLOURS.get(result.status, "#f5f5f5")
            if result
            else "#ffe9a8"
            if name == GATE_NAME
            else "#f5f5f5"
        )
        ax.add_patch(
            FancyBboxPatch(
                (2 * x - width / 2, -height / 2),
                width,
                height,
                boxstyle="round,pad=0.04",
                fc=colour,
                ec="#555555",
            )
        )
        ax.text(2 * x, 0, name, ha="center", va="center", fontsize=8)
        if result:
            ax.text(
                2 * x,
                -height / 2 - 0.18,
                f"{result.status} {result.seconds:.0f} s"
                if result.status == "ran"
                else result.status,
                ha="center",
                va="top",
                fontsize=7,
            )
    for a, b in edges:
        span = layer[b] - layer[a]
        start, end = (2 * layer[a] + width / 2, 0), (2 * layer[b] - width / 2, 0)
        style = "arc3,rad=0" if span == 1 else f"arc3,rad={-0.2 if span % 2 else -0.25}"
        if span > 1:
            start, end = (2 * layer[a], height / 2 + 0.04), (2 * layer[b], height / 2 + 0.04)
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                connectionstyle=style,
                arrowstyle="-|>",
                mutation_scale=11,
                color="#555555",
                lw=1,
            )
        )
    if run:
        used = [k for k in _STATUS_COLOURS if any(r.status == k for r in run.steps)]
        ax.legend(
            handles=[Patch(fc=_STATUS_COLOURS[k], ec="#555555", label=k) for k in used],
            loc="lower center",
            ncol=len(used),
            fontsize=7,
            frameon=False,
            bbox_to_anchor=(0.5, -0.08),
        )
    ax.set_xlim(-1, 2 * max(layer.values()) + 1)
    ax.set_ylim(-1.0, 0.45 + 0.27 * max(layer[b] - layer[a] for a, b in edges))
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax


# --------------------------------------------------------------------------------------
# Running locally
# --------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHE_HIT = re.compile(r"Task (\S+) cache hit")
_SKIPPED = re.compile(r"Skipping conditional task (\S+)")
_EXCEPTION = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)): (.+)$")


@dataclass
class StepResult:
    step: str
    status: str  # "ran", "cached", "skipped", "failed", "not run"
    seconds: float = 0.0
    note: str = ""


class PipelineStepError(RuntimeError):
    """A step of a local run failed; ``step`` and ``cause`` say which and why."""

    def __init__(self, step: str, cause: str, run: "PipelineRun"):
        self.step, self.cause, self.run = step, cause, run
        super().__init__(
            f"pipeline stopped at step '{step}': {cause} "
            f"(full log: {ws.display_path(run.log_path)})"
        )


@dataclass
class PipelineRun:
    """What a local run did: each step's status and time, the outputs, where things are."""

    root: Path
    log_path: Path
    parameters: dict
    steps: list[StepResult]
    seconds: float
    run_dir: Path | None = None
    outputs: dict = field(default_factory=dict)
    step_logs: dict = field(default_factory=dict)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.step == name)

    @property
    def deployed(self) -> bool:
        return self.step("deploy-model").status == "ran"

    @property
    def deploy_dir(self) -> Path | None:
        return Path(self.parameters["deploy_dir"]) if self.parameters.get("deploy_dir") else None

    @property
    def accuracy(self) -> float | None:
        return self.outputs.get("accuracy")

    @property
    def gate_message(self) -> str:
        threshold = self.parameters["accuracy_threshold"]
        if self.accuracy is None:
            return "not evaluated"
        verdict = "passed" if self.accuracy >= threshold else "did NOT pass"
        return f"test accuracy {self.accuracy:.3f} {verdict} the gate (>= {threshold})"

    @property
    def fingerprints(self) -> dict[str, str]:
        """The hashes ``fingerprint-inputs`` computed: data_version and each step's code."""
        return {k: self.outputs[k] for k in FINGERPRINT_OUTPUTS if k in self.outputs}

    def table(self):
        """The steps as a pandas DataFrame (step, status, seconds, note)."""
        import pandas as pd

        return pd.DataFrame([vars(s) for s in self.steps]).set_index("step")

    def artifact_paths(self) -> dict[str, str]:
        """Where each output artifact is, as shown to a learner."""
        return {
            name: ws.display_path(value.path)
            for name, value in self.outputs.items()
            if hasattr(value, "uri")
        }


class _RunTracker(io.TextIOBase):
    """Sees what kfp's local runner prints (and logs): step starts, ends, cache hits, skips."""

    def __init__(self, log_file, progress, echo: bool):
        self.console = sys.stdout  # where this process printed before kfp's output was redirected
        self.log_file, self.progress = log_file, progress
        self.echo = self.console if echo else None
        self.results: dict[str, StepResult] = {}
        self.started: dict[str, float] = {}
        self.lines: dict[str, list[str]] = {}
        self.current: str | None = None
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log_file.write(text)
        if self.echo is not None:
            self.echo.write(text)
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        for line in complete:
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()

    def _say(self, message: str) -> None:
        if callable(self.progress):
            self.progress(message)
        elif self.progress:
            self.console.write(message + "\n")
            self.console.flush()

    @staticmethod
    def _number(step: str) -> str:
        return f"[{ALL_TASKS.index(step)}/{len(STEPS)}]" if step in ALL_TASKS else "[-]"

    def _line(self, line: str) -> None:
        if m := _EXECUTING.search(line):
            self.current = m.group(1)
            self.started[self.current] = time.perf_counter()
            self.lines[self.current] = []
            self._say(f"{self._number(self.current)} {self.current}: running ...")
        elif m := _FINISHED.search(line):
            step, state = m.group(1), m.group(2)
            seconds = time.perf_counter() - self.started.get(step, time.perf_counter())
            if state == "SUCCESS":
                self.results[step] = StepResult(step, "ran", seconds)
                self._say(f"{' ' * len(self._number(step))} {step}: done in {seconds:.1f} s")
            else:
                causes = [
                    f"{e.group(1)}: {e.group(2)}"
                    for text in self.lines.get(step, [])
                    if (e := _EXCEPTION.match(text))
                ]
                cause = causes[-1] if causes else f"the step exited with status {state}"
                self.results[step] = StepResult(step, "failed", seconds, cause)
                self._say(
                    f"{' ' * len(self._number(step))} {step}: FAILED after {seconds:.1f} s: {cause}"
                )
            self.current = None
        elif self.current is not None:
            self.lines[self.current].append(line)

    def record(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.log_file.write(f"[kfp] {message}\n")
        if m := _CACHE_HIT.search(message):
            step = m.group(1)
            self.results[step] = StepResult(step, "cached", 0.0, "inputs unchanged: outputs reused")
            self._say(
                f"{self._number(step)} {step}: cached (inputs unchanged since an earlier run)"
            )
        elif (m := _SKIPPED.search(message)) and m.group(1).startswith("condition"):
            self.results["deploy-model"] = StepResult(
                "deploy-model", "skipped", 0.0, f"{GATE_NAME}: accuracy below the threshold"
            )
            self._say(f"{self._number('deploy-model')} deploy-model: skipped by the {GATE_NAME}")


class _RecordHandler(logging.Handler):
    def __init__(self, tracker: _RunTracker):
        super().__init__(logging.INFO)
        self.tracker = tracker

    def emit(self, record: logging.LogRecord) -> None:
        self.tracker.record(record)


@contextlib.contextmanager
def _capture(tracker: _RunTracker):
    root = logging.getLogger()
    handler = _RecordHandler(tracker)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(tracker):
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def default_root(workspace=None) -> Path:
    """Where local runs keep their outputs, cache and logs: ``<workspace>/pipeline``."""
    return ws.workspace_dir(workspace) / "pipeline"


def run_local(
    pipeline_root: str | os.PathLike | None = None,
    *,
    workspace=None,
    data_csv: str = "",
    labels_file: str = "",
    images_per_class: int = ws.DEFAULT_IMAGES_PER_CLASS,
    seed: int = ws.DEFAULT_SEED,
    img_size: int = ws.DEFAULT_IMG_SIZE,
    epochs: int = ws.DEFAULT_EPOCHS,
    model_kind: str = DEFAULT_MODEL_KIND,
    accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD,
    deploy_dir: str | os.PathLike | None = None,
    enable_caching: bool = True,
    progress: bool | Callable[[str], None] = True,
    echo_logs: bool = False,
    difficulty: str = ws.DEFAULT_DIFFICULTY,
) -> PipelineRun:
    """Run the pipeline in kfp's local runner (every step a subprocess of this Python).

    ``pipeline_root`` (default ``<workspace>/pipeline``) holds ``runs/`` (artifacts, one folder
    per run), ``cache/`` (kfp's cache entries), ``logs/`` (the full log of each run) and, unless
    ``deploy_dir`` says otherwise, ``deployed/`` (the folder the deploy step swaps a model into).
    ``progress``: print one line per step event (True), or pass each line to a callable;
    ``echo_logs`` also prints every step's own output (it is always in the run's log file).

    Returns a :class:`PipelineRun`. A failed step raises :class:`PipelineStepError` naming the
    step and the cause (the exception the step raised). A model below the gate is not an error:
    ``run.deployed`` is False and the deploy step is "skipped".
    """
    from kfp import local

    root = Path(pipeline_root) if pipeline_root else default_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    runs = root / "runs"
    if deploy_dir is None:
        deploy_dir = root / "deployed"
    parameters = dict(
        data_csv=str(data_csv or ""),
        labels_file=str(labels_file or ""),
        images_per_class=int(images_per_class),
        seed=int(seed),
        img_size=int(img_size),
        epochs=int(epochs),
        model_kind=model_kind,
        accuracy_threshold=float(accuracy_threshold),
        deploy_dir=str(deploy_dir or ""),
        workspace=str(ws.workspace_dir(workspace)),
        difficulty=str(difficulty),
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(runs),
        enable_caching=enable_caching,
        cache_root=str(root / "cache"),
        raise_on_error=True,
    )
    (root / "logs").mkdir(exist_ok=True)
    log_path = root / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    before = set(runs.iterdir()) if runs.exists() else set()
    flowers_pipeline = make_pipeline()
    start = time.perf_counter()
    with open(log_path, "w") as log_file:
        tracker = _RunTracker(log_file, progress, echo_logs)
        error = None
        outputs = {}
        with _capture(tracker):
            try:
                outputs = dict(flowers_pipeline(**parameters).outputs)
            except RuntimeError as exc:
                error = exc
    new_dirs = sorted(set(runs.iterdir()) - before) if runs.exists() else []
    steps = [tracker.results.get(s, StepResult(s, "not run")) for s in ALL_TASKS]
    run = PipelineRun(
        root=root,
        log_path=log_path,
        parameters=parameters,
        steps=steps,
        seconds=time.perf_counter() - start,
        run_dir=new_dirs[-1] if new_dirs else None,
        outputs=outputs,
        step_logs=tracker.lines,
    )
    if error is not None:
        failed = next((s for s in steps if s.status == "failed"), None)
        if failed is None:
            raise error
        raise PipelineStepError(failed.step, failed.note, run) from None
    return run


def confusion_matrix(artifact) -> tuple[list[str], list[list[int]]]:
    """(labels, matrix) of a kfp ClassificationMetrics artifact (rows: true, columns: predicted)."""
    cm = artifact.metadata["confusionMatrix"]
    labels = [spec["displayName"] for spec in cm["annotationSpecs"]]
    return labels, [[int(v) for v in row["row"]] for row in cm["rows"]]


def latest_runs(pipeline_root: str | os.PathLike) -> list[Path]:
    """The run folders under a local pipeline root, oldest first."""
    runs = Path(pipeline_root) / "runs"
    return (
        sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
        if runs.exists()
        else []
    )


# --------------------------------------------------------------------------------------
# The cloud: Vertex AI Pipelines or a Kubeflow Pipelines cluster
# --------------------------------------------------------------------------------------


def cloud_parameters(
    data_csv: str,
    bucket: str,
    project: str,
    region: str = "us-central1",
    runner: str = "DataflowRunner",
    **overrides,
) -> dict:
    """Pipeline parameters for a cloud run: data on GCS, Dataflow, a Vertex endpoint."""
    params = dict(data_csv=data_csv, runner=runner, project=project, region=region, deploy_dir="")
    params.update(overrides)
    return params


def submit(
    template_path: str | os.PathLike = COMPILED_PIPELINE,
    parameters: dict | None = None,
    project: str | None = None,
    region: str = "us-central1",
    bucket: str | None = None,
    kfp_host: str | None = None,
    enable_caching: bool = True,
):
    """Submit the compiled pipeline: to Vertex AI Pipelines (``project`` + ``bucket``) or to a
    Kubeflow Pipelines cluster (``kfp_host``). Returns the submitted job / run."""
    parameters = dict(parameters or {})
    if kfp_host:
        import kfp

        client = kfp.Client(host=kfp_host)
        return client.create_run_from_pipeline_package(
            str(template_path),
            arguments=parameters,
            experiment_name="flowers",
            enable_caching=enable_caching,
        )
    if not (project and bucket):
        raise ValueError(
            "submit needs project and bucket (Vertex AI Pipelines) or kfp_host (Kubeflow)"
        )
    from google.cloud import aiplatform

    aiplatform.init(project=project, location=region, staging_bucket=f"gs://{bucket}")
    job = aiplatform.PipelineJob(
        display_name=PIPELINE_NAME,
        template_path=str(template_path),
        pipeline_root=f"gs://{bucket}/pipeline_root",
        parameter_values=parameters,
        enable_caching=enable_caching,
    )
    job.submit()
    return job


def describe_submission(
    template_path: str | os.PathLike = COMPILED_PIPELINE,
    parameters: dict | None = None,
    project: str | None = None,
    region: str = "us-central1",
    bucket: str | None = None,
    kfp_host: str | None = None,
) -> str:
    """What :func:`submit` would send, as text (for when no project or host is set)."""
    target = (
        f"Kubeflow Pipelines at {kfp_host}"
        if kfp_host
        else f"Vertex AI Pipelines in {project}/{region}, pipeline_root gs://{bucket}/pipeline_root"
        if project and bucket
        else "nowhere: set PROJECT and BUCKET (Vertex) or KFP_HOST (Kubeflow)"
    )
    lines = [
        f"pipeline file : {ws.display_path(template_path)}",
        f"target        : {target}",
        "parameters    :",
    ]
    lines += [f"  {k} = {v!r}" for k, v in sorted((parameters or {}).items())]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Running automatically when new data lands
# --------------------------------------------------------------------------------------


def watch_folder(
    folder: str | os.PathLike,
    on_change: Callable[[Path], Any],
    known: str | None = None,
    poll_seconds: float = 2.0,
    max_polls: int = 10,
    max_triggers: int = 1,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Poll ``folder``'s content hash; call ``on_change(folder)`` when it changed and then stayed
    the same for one more poll (so files still being copied do not trigger a run).

    ``known``: the hash the last run used (None: the folder as it is now). Stops after
    ``max_triggers`` runs or ``max_polls`` polls. Returns one event dict per poll.
    """
    folder = Path(folder)
    known = known or folder_fingerprint(folder)
    pending = None
    events, triggers = [], 0
    for poll in range(max_polls):
        if poll:
            sleep(poll_seconds)
        current = folder_fingerprint(folder)
        event = dict(poll=poll, fingerprint=current[:10], action="no change")
        if current != known:
            if current == pending:
                event["action"] = "new data, stable: run the pipeline"
                event["result"] = on_change(folder)
                known, pending = current, None
                triggers += 1
            else:
                event["action"] = "new data: wait one poll for it to settle"
                pending = current
        events.append(event)
        if triggers >= max_triggers:
            break
    return events


def make_data_folder(source_csv: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy a (local) data set into ``dest`` as a self-contained folder (``<label>/<file>`` images,
    ``all_data.csv`` with relative paths, ``dict.txt``): a "landing folder" for new images.
    Returns the new CSV. Replaces ``dest`` if it exists."""
    from . import dataset_files

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    lines = []
    base = dataset_files.csv_folder(str(source_csv))
    for number, text in enumerate(Path(source_csv).read_text().splitlines(), start=1):
        row = dataset_files.parse_csv_line(number, text, base)
        if row.problem:
            continue
        target = dest / row.label / Path(row.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row.path, target)
        lines.append(f"{row.label}/{target.name},{row.label}")
    shutil.copyfile(
        Path(dataset_files.csv_folder(str(source_csv))) / LABELS_NAME, dest / LABELS_NAME
    )
    (dest / "all_data.csv").write_text("\n".join(lines) + "\n")
    return dest / "all_data.csv"


def add_new_images(
    data_csv: str | os.PathLike,
    images_per_class: int,
    seed: int,
    difficulty: str = ws.DEFAULT_DIFFICULTY,
) -> int:
    """Simulate new data landing: draw ``images_per_class`` new synthetic flowers per class (with
    ``seed`` and ``difficulty``), copy them next to ``data_csv`` as ``<label>/new<seed>_<file>``
    and append their lines. Returns the number of images added."""
    from . import synthetic

    folder = Path(data_csv).parent
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.generate_dataset(
            tmp, images_per_class, seed, progress=False, difficulty=difficulty
        )
        new_lines = []
        for line in (Path(tmp) / "flower_photos" / "all_data.csv").read_text().splitlines():
            path, label = line.rsplit(",", 1)
            name = f"new{seed}_{Path(path).name}"
            (folder / label).mkdir(exist_ok=True)
            shutil.copyfile(path, folder / label / name)
            new_lines.append(f"{label}/{name},{label}")
    with open(data_csv, "a") as f:
        f.write("\n".join(new_lines) + "\n")
    return len(new_lines)
