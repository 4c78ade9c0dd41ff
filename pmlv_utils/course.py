"""The whole course as one job (``make run``): data -> TFRecords -> model -> deployed -> served.

    python -m pmlv_utils.course [--workspace DIR] [--quick] [--difficulty {hard,easy}]

1. synthetic data     the offline 5-flowers set (chapter 5's input formats)
2. the kfp pipeline   run by kfp's local runner (pmlv_utils.pipeline): create-dataset (Beam) ->
                      train-model -> export-model -> evaluate-model -> deploy-model (SavedModel +
                      TFLite, only when test accuracy and the explanation check pass the gates)
3. serving            the local REST model server on the deployed model: start, one prediction,
                      stop; the same image through the TFLite model
4. summary            accuracy, sizes, timings, and where every artifact is

Re-running reuses what did not change (the dataset, and every step whose inputs and code are
the same: kfp's cache). Exits non-zero with the reason when a step fails or the model does not
pass the gate.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from . import pipeline
from . import workspace as ws
from .synthetic import DIFFICULTIES

QUICK = dict(
    images_per_class=30,
    img_size=32,
    epochs=3,
    accuracy_threshold=0.0,
    background_threshold=1.0,
    difficulty="easy",
)


class CourseError(RuntimeError):
    """The job cannot go on; the message says why."""


def _header(number: int, total: int, title: str) -> None:
    print(f"\n=== {number}/{total} {title} " + "=" * max(0, 60 - len(title)), flush=True)


def _done(start: float) -> float:
    seconds = time.perf_counter() - start
    print(f"    ({seconds:.1f} s)", flush=True)
    return seconds


def pick_test_image(all_data: Path) -> tuple[str, str]:
    """(path, label) of the first CSV line that falls in the test split."""
    from . import dataset_files

    for row in dataset_files.read_all_data(str(all_data), report=None):
        if not row.problem and dataset_files.split_for(row.path) == "test":
            return row.path, row.label
    raise CourseError(f"no image of {all_data} falls in the test split")


def serve_one_prediction(deployed: Path, image: str, label: str, data_root: Path) -> dict:
    """Start the local model server on ``deployed/saved_model``, predict ``image``, stop it;
    also run the deployed TFLite model on the same image."""
    import numpy as np

    from . import preprocess, serving, tflite

    saved_model = deployed / "saved_model"
    start = time.perf_counter()
    server = serving.start_server(saved_model, allowed_roots=[data_root])
    try:
        started = time.perf_counter() - start
        t0 = time.perf_counter()
        row = server.predict([image])[0]
        latency = time.perf_counter() - t0
    finally:
        server.stop()
    clf = tflite.TFLiteClassifier(deployed / pipeline.TFLITE_NAME)
    size = clf.image_shape[0]
    probabilities = clf.predict(np.asarray(preprocess.read_and_preprocess(image, size, size)))[0]
    best = int(np.argmax(probabilities))
    return dict(
        truth=label,
        server_label=row["flower_type_str"],
        server_probability=float(max(row["probability"])),
        tflite_label=clf.labels[best] if clf.labels else str(best),
        server_start_s=started,
        request_ms=1000 * latency,
    )


def _synthetic_data(images_per_class: int, seed: int, root: Path, difficulty: str) -> Path:
    """Step 1: the synthetic data set (built or reused); returns its all_data.csv."""
    data_dir = ws.ensure_dataset(images_per_class, seed, workspace=root, difficulty=difficulty)
    all_data, labels = ws.dataset_files(data_dir)
    n_images = sum(1 for line in all_data.read_text().splitlines() if line.strip())
    print(f"    {n_images} images, labels {labels.read_text().split()}")
    return all_data


def run_course(
    workspace=None,
    images_per_class: int = ws.DEFAULT_IMAGES_PER_CLASS,
    seed: int = ws.DEFAULT_SEED,
    img_size: int = ws.DEFAULT_IMG_SIZE,
    epochs: int = ws.DEFAULT_EPOCHS,
    accuracy_threshold: float = pipeline.DEFAULT_ACCURACY_THRESHOLD,
    difficulty: str = ws.DEFAULT_DIFFICULTY,
    background_threshold: float = pipeline.DEFAULT_BACKGROUND_THRESHOLD,
) -> dict:
    """Run the whole job; returns the summary dict. Raises CourseError / PipelineStepError."""
    job_start = time.perf_counter()
    root = ws.workspace_dir(workspace)
    print(
        f"workspace: {ws.display_path(root).removesuffix('/.')} (--workspace or $PMLV_WORKSPACE; "
        f"default ./workspace)\nsettings: {images_per_class} images per class ({difficulty}), "
        f"seed {seed}, {img_size}px, {epochs} epochs; deploy gate: accuracy >= {accuracy_threshold}"
        f" and background share <= {background_threshold}"
    )
    timings = {}

    _header(1, 4, "synthetic data")
    start = time.perf_counter()
    all_data = _synthetic_data(images_per_class, seed, root, difficulty)
    timings["synthetic data"] = _done(start)

    _header(2, 4, "the ML pipeline (kfp local runner)")
    start = time.perf_counter()
    settings = dict(images_per_class=images_per_class, seed=seed, img_size=img_size, epochs=epochs)
    gates = dict(accuracy_threshold=accuracy_threshold, background_threshold=background_threshold)
    run = pipeline.run_local(  # synthetic data mode: the workspace's data set
        pipeline.default_root(root), workspace=root, difficulty=difficulty, **settings, **gates
    )
    print(f"    {run.gate_message}")
    timings["pipeline"] = _done(start)
    if not run.deployed:
        raise CourseError(
            f"the model was not deployed: {run.gate_message}. Train longer "
            f"(--epochs) or on more images (--images-per-class), or lower "
            f"--accuracy-threshold / --background-threshold"
        )

    _header(3, 4, "a prediction from the local model server")
    start = time.perf_counter()
    image, label = pick_test_image(all_data)
    served = serve_one_prediction(run.deploy_dir, image, label, all_data.parent)
    print(
        f"    {Path(image).parent.name}/{Path(image).name}: truth {served['truth']}, server says "
        f"{served['server_label']} (p={served['server_probability']:.2f}), "
        f"TFLite says {served['tflite_label']}"
    )
    timings["serving"] = _done(start)

    _header(4, 4, "summary")
    summary = _summary(run, all_data, served, timings, time.perf_counter() - job_start)
    print(format_summary(summary))
    return summary


def _summary(
    run: pipeline.PipelineRun, all_data: Path, served: dict, timings: dict, seconds: float
) -> dict:
    import json

    counts = {
        k: int(v)
        for k, v in run.outputs["tfrecords"].metadata.items()
        if isinstance(v, (int, float))
    }
    deployed = run.deploy_dir
    info = json.loads((deployed / "deploy_info.json").read_text())
    return dict(
        results={
            "images (train / valid / test)": " / ".join(
                str(counts.get(split)) for split in ("train", "valid", "test")
            ),
            "lines rejected (dead-letter)": counts.get("rejected"),
            "test accuracy (exported model)": f"{run.accuracy:.3f}",
            "explanations' background share": f"{run.background_share:.3f}",
            "deploy gate": run.gate_message,
            "SavedModel size": f"{info['savedmodel_bytes'] / 1e6:.2f} MB",
            "TFLite float32 size": f"{info['tflite_bytes'] / 1e6:.3f} MB",
            "served prediction": f"{served['server_label']} (truth {served['truth']}); "
            f"TFLite: {served['tflite_label']}",
            "server start / one request": f"{served['server_start_s']:.1f} s / "
            f"{served['request_ms']:.0f} ms",
        },
        artifacts={
            "data CSV": ws.display_path(all_data),
            "TFRecords": ws.display_path(run.outputs["tfrecords"].path),
            "trainer job dir": ws.display_path(run.outputs["trained"].path),
            "training curves": ws.display_path(
                Path(run.outputs["trained"].path) / "training_curves.png"
            ),
            "exported SavedModel": ws.display_path(run.outputs["exported"].path),
            "deployed model (served)": ws.display_path(deployed / "saved_model"),
            "deployed TFLite": ws.display_path(deployed / pipeline.TFLITE_NAME),
            "pipeline run log": ws.display_path(run.log_path),
        },
        steps=[(s.step, s.status, s.seconds) for s in run.steps],
        timings={**timings, "total": seconds},
    )


def format_summary(summary: dict) -> str:
    """The summary as aligned text tables."""

    def table(rows, width):
        return "\n".join(f"    {k:<{width}} {v}" for k, v in rows)

    parts = [
        "results:",
        table(summary["results"].items(), 32),
        "where everything is:",
        table(summary["artifacts"].items(), 32),
        "pipeline steps:",
        table(((s, f"{st:<8} {sec:6.1f} s") for s, st, sec in summary["steps"]), 32),
        "job timings:",
        table(((k, f"{v:6.1f} s") for k, v in summary["timings"].items()), 32),
    ]
    return "\n".join(parts)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m pmlv_utils.course", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--workspace",
        default=None,
        help="artifact folder (default: $PMLV_WORKSPACE or ./workspace)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny settings for a smoke test: {QUICK} (the gates are off)",
    )
    ap.add_argument("--images-per-class", type=int)
    ap.add_argument("--seed", type=int, default=ws.DEFAULT_SEED)
    ap.add_argument("--img-size", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--accuracy-threshold", type=float)
    ap.add_argument(
        "--background-threshold",
        type=float,
        help="deploy only when at most this share of the explanations' evidence lies off the "
        f"flowers (default {pipeline.DEFAULT_BACKGROUND_THRESHOLD}; --quick: 1.0, off)",
    )
    ap.add_argument(
        "--difficulty",
        choices=DIFFICULTIES,
        help=f"synthetic data: hard (photo-like; default {ws.DEFAULT_DIFFICULTY}) or easy "
        "(large centred flowers; --quick's)",
    )
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
    if args.workspace:  # so that display_path and the pipeline's step processes see it too
        os.environ["PMLV_WORKSPACE"] = str(Path(args.workspace).resolve())
    settings = dict(
        images_per_class=ws.DEFAULT_IMAGES_PER_CLASS,
        img_size=ws.DEFAULT_IMG_SIZE,
        epochs=ws.DEFAULT_EPOCHS,
        accuracy_threshold=pipeline.DEFAULT_ACCURACY_THRESHOLD,
        background_threshold=pipeline.DEFAULT_BACKGROUND_THRESHOLD,
        difficulty=ws.DEFAULT_DIFFICULTY,
    )
    if args.quick:
        settings.update(QUICK)
    for name in settings:
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    start = time.perf_counter()
    try:
        run_course(args.workspace, seed=args.seed, **settings)
    except pipeline.PipelineStepError as err:
        print(
            f"\nFAILED at pipeline step '{err.step}': {err.cause}\n"
            f"full log: {ws.display_path(err.run.log_path)}",
            file=sys.stderr,
        )
        return 1
    except (CourseError, OSError, ValueError, RuntimeError) as err:
        print(f"\nFAILED: {err}", file=sys.stderr)
        return 1
    print(f"\nthe course job finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
