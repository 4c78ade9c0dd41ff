"""The Workbench set-up script registers the pinned environment as a Jupyter kernel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_workbench_setup_installs_kernel(tmp_path):
    # Reuse this environment (everything already satisfied) with a throwaway HOME.
    env = dict(os.environ, HOME=str(tmp_path), PMLV_VENV=sys.prefix, PYTHON=sys.executable)
    out = subprocess.run(
        ["bash", str(REPO / "tools" / "workbench_setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    spec = json.loads((tmp_path / ".local/share/jupyter/kernels/pmlv/kernel.json").read_text())
    assert spec["display_name"] == "Python (PMLV course)"
    assert Path(spec["argv"][0]).parent == Path(sys.executable).parent
