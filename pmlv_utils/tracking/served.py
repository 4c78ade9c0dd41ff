"""Serving a logged model with ``mlflow models serve --env-manager local`` on 127.0.0.1.

Each server logs to ``<workspace>/mlflow-serve-<port>.log``; only the newest
``workspace.KEEP_LOGS`` of these files are kept (older ones are deleted when a server starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from .. import workspace as ws
from ..serving import free_port, wait_until_ready
from .runs import tracking_uri


@dataclass
class ServedModel:
    """A running ``mlflow models serve`` process: its URL, process and log file."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def invocations(self, body: dict, timeout: float = 120.0):
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
    port = port or free_port(host)
    root = ws.workspace_dir(workspace)
    log_path = root / f"mlflow-serve-{port}.log"
    ws.prune(root, "mlflow-serve-*.log", keep=ws.KEEP_LOGS - 1)  # and this one makes KEEP_LOGS
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
    with open(log_path, "w") as log:  # the child keeps its own handle
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
