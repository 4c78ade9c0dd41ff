"""Explanations tracked and served with MLflow (10d).

- MLflow on sqlite in the workspace by default (``sqlite:///<workspace>/mlflow.db``); pass a
  tracking URI for a server.
- The training run: parameters and metrics of a trainer job dir, its curves, and explanation
  artifacts (attribution arrays as ``.npz`` read back with ``allow_pickle=False``, plots as PNG).
- An explainer logged as an MLflow pyfunc model *from code* (no pickled Python object) with a
  signature: base64 image bytes in; label, probability, ``approx_error``, the attribution map as a
  JSON array and as a base64 PNG out. Never pickles: the source text sends pickled SHAP values over
  HTTP, which lets whoever answers run code on the client.
- ``serve_model`` runs ``mlflow models serve --env-manager local`` on 127.0.0.1.
- ``run_batch_explanations``: Beam, the explainer loaded once per worker (``Shared``), batches
  from ``BatchElements``, bad images to a dead-letter output.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import workspace as ws

EXPERIMENT = "flowers-explanations"
MODEL_CODE = Path(__file__).with_name("mlflow_explainer_model.py")  # the pyfunc model, from code
INPUT_COLUMNS = ("image_b64", "target")


# --------------------------------------------------------------------------------------
# Tracking
# --------------------------------------------------------------------------------------


def tracking_uri(uri: str | None = None, workspace=None) -> str:
    """The tracking URI: the argument, $MLFLOW_TRACKING_URI, or sqlite in the workspace."""
    return (
        uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{ws.workspace_dir(workspace) / 'mlflow.db'}"
    )


def configure(uri: str | None = None, experiment: str = EXPERIMENT, workspace=None) -> str:
    """Point MLflow at the tracking store and experiment; returns the experiment id.

    With the default sqlite store, artifacts go to ``<workspace>/mlartifacts``.
    """
    import mlflow

    uri = tracking_uri(uri, workspace)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = None
        if uri.startswith("sqlite:"):
            location = (ws.workspace_dir(workspace) / "mlartifacts").as_uri()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_training_job(job_dir: str | os.PathLike) -> None:
    """Log a trainer job dir's metrics.json (params and metrics) and curves to the active run."""
    import mlflow

    job_dir = Path(job_dir)
    metrics_file = job_dir / "metrics.json"
    if not metrics_file.exists():
        raise FileNotFoundError(
            f"{ws.display_path(job_dir)}: no metrics.json (not a trainer job dir?)"
        )
    metrics = json.loads(metrics_file.read_text())
    numbers = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    params = (
        {k: v for k, v in metrics.get("params", {}).items()}
        if isinstance(metrics.get("params"), dict)
        else {}
    )
    if params:
        mlflow.log_params(params)
    mlflow.log_metrics(numbers)
    for name in ("training_curves.png", "metrics.json"):
        if (job_dir / name).exists():
            mlflow.log_artifact(str(job_dir / name), artifact_path="training")


def log_explanations(
    images: np.ndarray,
    attributions: np.ndarray,
    names: Sequence[str],
    approx_error: np.ndarray | None = None,
    method: str = "ig",
    artifact_path: str = "explanations",
) -> list[str]:
    """Log attribution arrays (.npz, no pickles), a JSON summary and an overlay plot to the active run."""
    import tempfile

    import mlflow

    from .explain import plots as explain_plots

    images, attributions = np.asarray(images), np.asarray(attributions)
    if images.shape[:3] != attributions.shape[:3] or len(names) != len(images):
        raise ValueError(
            f"images {images.shape}, attributions {attributions.shape} and "
            f"{len(names)} names do not match"
        )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez_compressed(
            tmp / f"{method}_attributions.npz",
            attributions=attributions.astype(np.float32),
            names=np.asarray(names, dtype=str),
        )
        summary = [
            {
                "name": n,
                "sum": float(a.sum()),
                "abs_sum": float(np.abs(a).sum()),
                **({"approx_error": float(approx_error[i])} if approx_error is not None else {}),
            }
            for i, (n, a) in enumerate(zip(names, attributions))
        ]
        (tmp / f"{method}_summary.json").write_text(json.dumps(summary, indent=1))
        fig = explain_plots.plot_explanation_grid(images, attributions, titles=list(names))
        fig.savefig(tmp / f"{method}_grid.png", dpi=80, bbox_inches="tight")
        mlflow.log_artifacts(str(tmp), artifact_path=artifact_path)
        return sorted(f"{artifact_path}/{p.name}" for p in tmp.iterdir())


def load_logged_attributions(
    run_id: str, method: str = "ig", artifact_path: str = "explanations"
) -> dict:
    """Download and read back the arrays logged by :func:`log_explanations` (no pickles)."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"{artifact_path}/{method}_attributions.npz"
    )
    with np.load(local, allow_pickle=False) as data:
        return {"attributions": data["attributions"], "names": list(data["names"])}


# --------------------------------------------------------------------------------------
# The explainer as an MLflow pyfunc model
# --------------------------------------------------------------------------------------


def decode_request_images(b64_images: Sequence[str], img_size: int) -> np.ndarray:
    """base64 image bytes -> float images [N, H, W, 3] through THE preprocessing function."""
    import tensorflow as tf

    from .preprocess import preprocess_image

    images = []
    for i, text in enumerate(b64_images):
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError) as err:
            raise ValueError(f"row {i}: image_b64 is not valid base64 ({err})") from None
        try:
            images.append(preprocess_image(tf.constant(raw), img_size, img_size).numpy())
        except tf.errors.InvalidArgumentError:
            raise ValueError(f"row {i}: image_b64 does not hold a JPEG/PNG image") from None
    return np.stack(images) if images else np.zeros((0, img_size, img_size, 3), np.float32)


def explainer_signature(img_size: int):
    """The pyfunc signature: inputs image_b64 (required) + target (optional); outputs per image."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([ColSpec("string", "image_b64"), ColSpec("string", "target", required=False)])
    outputs = Schema(
        [
            ColSpec("string", "label"),
            ColSpec("double", "probability"),
            ColSpec("double", "approx_error"),
            ColSpec("string", "attribution_png_b64"),
            ColSpec(Array(Array("double")), "attribution"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_explainer(
    export_dir: str | os.PathLike,
    method: str = "ig",
    steps: int = 64,
    name: str = "explainer",
    input_example: Any = None,
):
    """Log the explainer (from code, with the SavedModel as an artifact) to the active run.

    Returns the ModelInfo (``.model_uri`` to load or serve it).
    """
    import mlflow

    from .export import read_model_info

    img_size = int(read_model_info(str(export_dir))["img_size"])
    with quiet_pyfunc_warnings():
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={"saved_model": str(export_dir)},
            model_config={"method": method, "steps": steps},
            signature=explainer_signature(img_size),
            code_paths=[str(Path(__file__).parent)],
            input_example=input_example,
            pip_requirements=[f"-r {ws.REPO_ROOT / 'requirements.txt'}"]
            if (ws.REPO_ROOT / "requirements.txt").exists()
            else None,
        )


@contextlib.contextmanager
def quiet_pyfunc_warnings():
    """Silence MLflow's advice to add type hints / an input example: the signature is explicit."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(type hints|input example).*", category=UserWarning
        )
        yield


def load_explainer(model_uri: str):
    """``mlflow.pyfunc.load_model`` without the type-hint advice."""
    import mlflow.pyfunc

    with quiet_pyfunc_warnings():
        return mlflow.pyfunc.load_model(model_uri)


def image_request(paths: Sequence[str | os.PathLike], targets: Sequence[str] | None = None) -> dict:
    """A JSON body for the served explainer: ``{"dataframe_records": [{"image_b64": ...}, ...]}``."""
    records = []
    for i, path in enumerate(paths):
        record = {"image_b64": base64.b64encode(Path(path).read_bytes()).decode()}
        if targets is not None:
            record["target"] = str(targets[i])
        records.append(record)
    return {"dataframe_records": records}


# --------------------------------------------------------------------------------------
# Serving with `mlflow models serve`
# --------------------------------------------------------------------------------------


@dataclass
class ServedModel:
    url: str
    process: subprocess.Popen
    log_path: Path

    def invocations(self, body: dict, timeout: float = 120.0):
        import requests

        return requests.post(f"{self.url}/invocations", json=body, timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def serve_model(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    uri: str | None = None,
    workspace=None,
    timeout: float = 180.0,
) -> ServedModel:
    """Start ``mlflow models serve --env-manager local`` and wait until /ping answers."""
    from .serving import free_port, wait_until_ready

    port = port or free_port(host)
    log_path = ws.workspace_dir(workspace) / f"mlflow-serve-{port}.log"
    # mlflow execs `uvicorn` by name: put this interpreter's bin folder (the venv's) first on PATH.
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=tracking_uri(uri, workspace),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "-h",
        host,
        "-p",
        str(port),
        "--env-manager",
        "local",
        "--workers",
        "1",
    ]
    log = open(log_path, "w")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    served = ServedModel(f"http://{host}:{port}", process, log_path)
    wait_until_ready(
        process,
        f"{served.url}/ping",
        timeout,
        "mlflow models serve",
        lambda: log_path.read_text()[-3000:],
        served.stop,
        poll_s=1.0,
    )
    return served


# --------------------------------------------------------------------------------------
# Batch explanations with Beam
# --------------------------------------------------------------------------------------


class _LoadedExplainer:
    """A weak-referenceable holder for a loaded pyfunc model (Shared needs one)."""

    loads = 0

    def __init__(self, model_uri: str):
        self.model = load_explainer(model_uri)
        _LoadedExplainer.loads += 1


def _explain_batch_fn(model_uri: str, shared_handle):
    """The per-batch function of the Beam job: explains a list of image paths."""

    def explain_paths(paths: list[str]):
        import apache_beam as beam
        import pandas as pd

        holder = shared_handle.acquire(lambda: _LoadedExplainer(model_uri))
        good, records = [], []
        for path in paths:
            try:
                with open(path, "rb") as f:
                    records.append({"image_b64": base64.b64encode(f.read()).decode()})
                good.append(path)
            except OSError as err:
                yield beam.pvalue.TaggedOutput(
                    "dead_letter", {"path": path, "reason": f"unreadable: {err.strerror}"}
                )
        # One call for the batch; if it fails (a bad image), retry one by one to isolate it.
        try:
            rows = holder.model.predict(pd.DataFrame(records)) if records else []
            pairs = list(zip(good, rows))
        except Exception:  # noqa: BLE001 - the failing row is found and reported below
            pairs = []
            for path, record in zip(good, records):
                try:
                    pairs.append((path, holder.model.predict(pd.DataFrame([record]))[0]))
                except Exception as err:  # noqa: BLE001
                    yield beam.pvalue.TaggedOutput(
                        "dead_letter", {"path": path, "reason": str(err)[:300]}
                    )
        for path, row in pairs:
            yield {
                "path": path,
                "label": row["label"],
                "probability": row["probability"],
                "approx_error": row["approx_error"],
                "attribution_png_b64": row["attribution_png_b64"],
            }

    return explain_paths


def run_batch_explanations(
    paths: Sequence[str],
    model_uri: str,
    output_prefix: str,
    min_batch_size: int = 4,
    max_batch_size: int = 16,
    uri: str | None = None,
    workspace=None,
) -> dict:
    """Explain many images with Beam; returns counts and output files.

    Writes ``<output_prefix>-explanations-*.jsonl`` and ``<output_prefix>-errors-*.jsonl``.
    """
    import apache_beam as beam
    from apache_beam.utils.shared import Shared

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri(uri, workspace)
    shared = Shared()
    with beam.Pipeline() as pipeline:
        results = (
            pipeline
            | "paths" >> beam.Create([str(p) for p in paths])
            | "batch"
            >> beam.BatchElements(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
            | "explain"
            >> beam.FlatMap(_explain_batch_fn(model_uri, shared)).with_outputs(
                "dead_letter", main="explained"
            )
        )
        (
            results.explained
            | "json" >> beam.Map(json.dumps)
            | "write"
            >> beam.io.WriteToText(output_prefix + "-explanations", file_name_suffix=".jsonl")
        )
        (
            results.dead_letter
            | "json errors" >> beam.Map(json.dumps)
            | "write errors"
            >> beam.io.WriteToText(output_prefix + "-errors", file_name_suffix=".jsonl")
        )
    folder = Path(output_prefix).parent
    stem = Path(output_prefix).name
    explained = sorted(folder.glob(f"{stem}-explanations-*.jsonl"))
    errors = sorted(folder.glob(f"{stem}-errors-*.jsonl"))
    count = lambda files: sum(
        1 for f in files for line in f.read_text().splitlines() if line.strip()
    )  # noqa: E731
    return {
        "explained": count(explained),
        "dead_letter": count(errors),
        "explanation_files": [str(f) for f in explained],
        "error_files": [str(f) for f in errors],
    }


def read_jsonl(files: Sequence[str]) -> list[dict]:
    return [
        json.loads(line) for f in files for line in Path(f).read_text().splitlines() if line.strip()
    ]


def png_b64_to_image(text: str) -> np.ndarray:
    """Decode a base64 PNG from a response (for plotting)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))
