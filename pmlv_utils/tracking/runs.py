"""MLflow runs: the tracking store, a trainer job's metrics and curves, explanation artifacts.

MLflow on sqlite in the workspace by default (``sqlite:///<workspace>/mlflow.db``); pass a
tracking URI for a server. Attribution arrays are logged as ``.npz`` and read back with
``allow_pickle=False``; plots as PNG.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import mlflow
import numpy as np

from .. import workspace as ws
from ..explain import plots as explain_plots

EXPERIMENT = "flowers-explanations"


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
    """Log attribution arrays (.npz, no pickles), a JSON summary and an overlay plot to the run."""
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
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"{artifact_path}/{method}_attributions.npz"
    )
    with np.load(local, allow_pickle=False) as data:
        return {"attributions": data["attributions"], "names": list(data["names"])}


class _ListHandler(logging.Handler):
    def __init__(self, messages: list[str]):
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@contextlib.contextmanager
def _displays_dropped():
    """Inside IPython, drop what the block displays (progress widgets); elsewhere, nothing."""
    try:
        from IPython import get_ipython
        from IPython.utils.capture import capture_output
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        yield
        return
    with capture_output(stdout=False, stderr=False, display=True):
        yield


@contextlib.contextmanager
def captured_messages(logger: str = "mlflow"):
    """Collect what a block says besides its result: ``logger``'s records (WARNING and up),
    Python warnings, stderr (progress bars) and, in a notebook, displayed progress widgets
    (tqdm.auto's, as shap draws). Yields the list they are appended to, so a notebook can
    show the lines that matter (where MLflow stops) instead of all of them."""
    messages: list[str] = []
    log = logging.getLogger(logger)
    saved = log.handlers[:], log.propagate
    log.handlers, log.propagate = [_ListHandler(messages)], False
    stderr = io.StringIO()
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stderr(stderr),
            _displays_dropped(),
        ):
            warnings.simplefilter("always")
            try:
                yield messages
            finally:
                messages.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        log.handlers, log.propagate = saved
