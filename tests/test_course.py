"""`python -m pmlv_utils.course` (what `make run` runs), on tiny settings, as a subprocess.

Shares its workspace with tests/test_pipeline.py (same tiny settings -> kfp's cache).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmlv_utils import course
from pmlv_utils import workspace as ws


def _run_course(workspace, tiny, *args):
    cmd = [
        sys.executable,
        "-m",
        "pmlv_utils.course",
        "--workspace",
        str(workspace),
        "--quick",
        "--images-per-class",
        str(tiny["images_per_class"]),
        "--img-size",
        str(tiny["img_size"]),
        "--epochs",
        str(tiny["epochs"]),
        *args,
    ]
    hidden = ("PMLV_WORKSPACE", ws.NOTEBOOK_PATHS_ENV)  # as `make run` sees it
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)


@pytest.mark.slow
def test_quick_course_job_prints_the_summary(tiny_ws, tiny_pipeline_settings):
    workspace = tiny_ws
    done = _run_course(workspace, tiny_pipeline_settings)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for header in (
        "1/4 synthetic data",
        "2/4 the ML pipeline",
        "3/4 a prediction from the local model server",
        "4/4 summary",
    ):
        assert header in out
    for step in ("create-dataset", "train-model", "export-model", "evaluate-model", "deploy-model"):
        assert step in out
    for row in (
        "test accuracy (exported model)",
        "TFLite float32 size",
        "served prediction",
        "deployed TFLite",
        "total",
    ):
        assert row in out, row
    # real paths a user can open (absolute here: the workspace is outside the current folder)
    tflite = workspace / "pipeline" / "deployed" / "model_float32.tflite"
    assert f" {tflite}\n" in out and tflite.exists()
    table = out.split("where everything is:\n")[1].split("pipeline steps:")[0].splitlines()
    shown = [line[line.index(f"{workspace}/") :] for line in table]  # every row: a real path
    assert len(shown) == 8 and all(Path(p).exists() for p in shown), shown
    assert "$PMLV_WORKSPACE" not in out.replace("(--workspace or $PMLV_WORKSPACE;", "")
    assert "the course job finished" in out
    assert "images per class (easy)" in out  # --quick's data


@pytest.mark.slow
def test_course_job_fails_clearly_when_the_model_misses_the_gate(tiny_ws, tiny_pipeline_settings):
    done = _run_course(tiny_ws, tiny_pipeline_settings, "--accuracy-threshold", "1.01")
    assert done.returncode == 1
    assert "FAILED: the model was not deployed" in done.stderr
    assert "refused: test accuracy" in done.stderr and "< threshold 1.01" in done.stderr


def test_arguments_quick_and_overrides():
    args = course.parse_args(["--quick", "--epochs", "5"])
    assert args.quick and args.epochs == 5 and args.img_size is None
    assert course.QUICK["accuracy_threshold"] == 0.0
    assert course.QUICK["background_threshold"] == 1.0  # both gates off in a smoke test
    assert course.parse_args(["--background-threshold", "0.4"]).background_threshold == 0.4
    assert course.QUICK["difficulty"] == "easy"  # quick runs use the fast, clean data
    assert course.parse_args([]).difficulty is None  # then: workspace.DEFAULT_DIFFICULTY
    assert course.parse_args(["--difficulty", "hard"]).difficulty == "hard"
