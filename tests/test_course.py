"""`python -m pmlv_utils.course` (what `make run` runs), on tiny settings, as a subprocess.

Shares its workspace with tests/test_pipeline.py (same tiny settings -> kfp's cache).
"""
import os
import subprocess
import sys

import pytest

from pmlv_utils import course
from test_pipeline import TINY, shared_workspace


def _run_course(workspace, *args):
    cmd = [sys.executable, "-m", "pmlv_utils.course", "--workspace", str(workspace), "--quick",
           "--images-per-class", str(TINY["images_per_class"]), "--img-size", str(TINY["img_size"]),
           "--epochs", str(TINY["epochs"]), *args]
    env = {k: v for k, v in os.environ.items() if k != "PMLV_WORKSPACE"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)


@pytest.mark.slow
def test_quick_course_job_prints_the_summary(tmp_path_factory):
    workspace = shared_workspace(tmp_path_factory)
    done = _run_course(workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for header in ("1/4 synthetic data", "2/4 the ML pipeline", "3/4 a prediction from the local model server",
                   "4/4 summary"):
        assert header in out
    for step in ("create-dataset", "train-model", "export-model", "evaluate-model", "deploy-model"):
        assert step in out
    for row in ("test accuracy (exported model)", "TFLite float32 size", "served prediction",
                "deployed TFLite", "$PMLV_WORKSPACE/pipeline/deployed/model_float32.tflite", "total"):
        assert row in out, row
    assert str(workspace) not in out  # paths are shown relative to the workspace
    assert "the course job finished" in out


@pytest.mark.slow
def test_course_job_fails_clearly_when_the_model_misses_the_gate(tmp_path_factory):
    done = _run_course(shared_workspace(tmp_path_factory), "--accuracy-threshold", "1.01")
    assert done.returncode == 1
    assert "FAILED: the model was not deployed" in done.stderr
    assert "did NOT pass the gate (>= 1.01)" in done.stderr


def test_arguments_quick_and_overrides():
    args = course.parse_args(["--quick", "--epochs", "5"])
    assert args.quick and args.epochs == 5 and args.img_size is None
    assert course.QUICK["accuracy_threshold"] == 0.0
