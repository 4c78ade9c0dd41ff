"""The kfp v2 lightweight components: thin wrappers around the ``*_step`` functions of ``steps``.

    fingerprint_inputs  content hashes of the data and of each step's code (never cached)
    create_dataset      chapter 5: all_data.csv -> TFRecords (Beam)
    train_model         chapter 7: the trainer; its Model artifact is the trainer job dir
    export_model        chapter 7/9: the SavedModel with the serving signatures
    evaluate_model      test accuracy + confusion matrix of the exported model (the gate's input)
    explain_check       the background share of the exported model's explanations on a probe
                        set (the explanation gate's input)
    deploy_model        SavedModel + TFLite in deploy_dir; with a project, a Vertex AI endpoint

kfp names each task after its function (``train_model`` -> ``train-model``) and copies each
function's source into the compiled YAML, where it runs on its own: the bodies import what they
use inside, and call only public names. (The component ``export_model`` is not
``pmlv_utils.export.export_saved_model``, which its step calls.)

One quirk of kfp 2.17's local cache: an entry whose output artifact has no file is treated as a
miss, so the steps that log Metrics also write them to the artifact's file.
"""

from typing import NamedTuple

from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output


def fingerprint_inputs(data_csv: str, labels_file: str) -> NamedTuple(
    "Fingerprints",
    data_version=str,
    dataset_code=str,
    train_code=str,
    export_code=str,
    evaluate_code=str,
    explain_code=str,
):
    """Content hashes of the data and of each step's code (never cached: it looks every time)."""
    from pmlv_utils.pipeline import fingerprints

    return fingerprints.input_fingerprints(data_csv, labels_file)


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
    from pmlv_utils.pipeline import steps

    out = tfrecords.uri if runner == "DataflowRunner" else tfrecords.path
    result = steps.create_dataset_step(
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
    from pmlv_utils import safe_io
    from pmlv_utils.pipeline import steps

    metrics = steps.train_step(tfrecords.path, trained.path, img_size, epochs, model_kind, seed)
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    for name, value in scalars.items():
        training_metrics.log_metric(name, value)
    safe_io.write_json(training_metrics.path, scalars)
    trained.metadata.update(dict(img_size=img_size, epochs=epochs, model_kind=model_kind))


def export_model(trained: Input[Model], code_version: str, exported: Output[Model]):
    """Chapter 7/9: the SavedModel with the serving signatures."""
    from pmlv_utils.pipeline import steps

    exported.metadata.update(steps.export_step(trained.path, exported.path))


def evaluate_model(
    exported: Input[Model],
    tfrecords: Input[Dataset],
    code_version: str,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
) -> float:
    """Test accuracy and confusion matrix of the exported model; returns the accuracy (the
    gate's input)."""
    from pmlv_utils import safe_io
    from pmlv_utils.pipeline import steps

    result = steps.evaluate_step(exported.path, tfrecords.path)
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


def explain_check(
    exported: Input[Model],
    probe_dir: str,
    images_per_class: int,
    seed: int,
    workspace: str,
    difficulty: str,
    probe_per_class: int,
    code_version: str,
    explanation_metrics: Output[Metrics],
) -> float:
    """The share of the model's IG evidence that lies off the flowers (worst class) on a probe
    set with flower masks; returns it (the explanation gate's input)."""
    from pmlv_utils import safe_io
    from pmlv_utils.pipeline import steps

    probes = steps.probe_data_dir(probe_dir, images_per_class, seed, workspace, difficulty)
    result = steps.explain_check_step(exported.path, probes, probe_per_class)
    scalars = dict(
        background_share=result["background_share"],
        background_area=result["background_area"],
        probe_images=result["probe_images"],
        **{f"background_share_{k}": v for k, v in result["by_class"].items()},
    )
    for name, value in scalars.items():
        explanation_metrics.log_metric(name, value)
    explanation_metrics.metadata["worst_class"] = result["worst_class"]
    safe_io.write_json(explanation_metrics.path, {**scalars, "worst_class": result["worst_class"]})
    print(
        f"background share {result['background_share']:.3f} ({result['worst_class']}) on "
        f"{result['probe_images']} probe images; the background is "
        f"{result['background_area']:.3f} of the pixels"
    )
    return result["background_share"]


def deploy_model(
    exported: Input[Model],
    deploy_dir: str,
    project: str,
    region: str,
    endpoint_name: str,
    deployed: Output[Model],
):
    """Locally: SavedModel + TFLite in deploy_dir; with a project: a Vertex AI endpoint too."""
    from pmlv_utils.pipeline import steps

    info = steps.deploy_step(
        exported.path,
        deployed.path,
        deploy_dir,
        project,
        region,
        endpoint_name,
        export_uri=exported.uri,
    )
    deployed.metadata.update(info)


# In the pipeline's order.
ALL_COMPONENTS = (
    fingerprint_inputs,
    create_dataset,
    train_model,
    export_model,
    evaluate_model,
    explain_check,
    deploy_model,
)
