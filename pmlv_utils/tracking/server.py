"""Background servers for 10d: ``mlflow server`` (a real tracking server) and the plumbing to
start, wait for and stop any command on 127.0.0.1.

:func:`launch` starts a command in its own process group with its output in a log file and
returns at once (an MLflow server takes a minute to start on a busy 2-core machine: start it
early, wait later); :meth:`Background.wait_ready` polls a URL; :meth:`Background.stop` ends the
whole group (``mlflow server`` forks uvicorn workers).

:func:`tracking_server_command` is the command 10d §1 shows: a sqlite backend store and a
local artifact folder that the server serves to its clients (``mlflow-artifacts:/``), on
127.0.0.1 only, one worker. :func:`start_tracking_server` runs it and waits (tests).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import requests

from ..serving import free_port


@dataclass
class Background:
    """A command running in its own process group: its URL (if a server), process and log."""

    process: subprocess.Popen
    log_path: Path
    url: str = ""
    started: float = field(default_factory=time.perf_counter)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def wait_ready(self, path: str = "/health", timeout: float = 300.0, poll_s: float = 0.5):
        """Poll ``url + path`` until it answers 200; returns the seconds since the start.

        A port that accepts but does not answer yet times out (not refused): both are waited
        for. Raises with the log's tail if the process exits or ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"exited with code {code}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + path, timeout=5).status_code == 200:
                    return time.perf_counter() - self.started
            except requests.RequestException:
                pass
            time.sleep(poll_s)
        self.stop()
        raise TimeoutError(f"{self.url} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM to the process group, SIGKILL if it is still there after ``timeout`` s."""
        if self.process.poll() is None:
            with _gone_ok():
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with _gone_ok():
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        return self.process.returncode


class _gone_ok:
    """Ignore ProcessLookupError (the group already ended)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is ProcessLookupError


def launch(
    cmd: Sequence[str], log_path: str | os.PathLike, url: str = "", env: dict | None = None
) -> Background:
    """Start ``cmd`` in a new session (its own process group), output to ``log_path``.

    The interpreter's bin folder goes first on PATH: ``mlflow models serve --env-manager local``
    execs ``uvicorn`` by name, which a kernel started without activating the venv lacks."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    child_env = {**os.environ, "PATH": path, **(env or {})}
    with open(log_path, "w") as log:  # the child keeps its own handle
        process = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=True,
        )
    running = Background(process, log_path, url)
    atexit.register(running.stop)  # a kernel that ends (or fails) does not leave it running
    return running


def tracking_server_command(
    root: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None
) -> list[str]:
    """``mlflow server`` with ``<root>/server.db`` (sqlite) and ``<root>/artifacts``."""
    root = Path(root).resolve()
    return [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--backend-store-uri", f"sqlite:///{root / 'server.db'}"),
        *("--artifacts-destination", str(root / "artifacts")),
        *("--host", host, "--port", str(port or free_port(host)), "--workers", "1"),
    ]


def start_tracking_server(
    root: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None, wait: float = 300
) -> Background:
    """Start :func:`tracking_server_command` and wait (``wait`` s at most) until /health is OK."""
    port = port or free_port(host)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    server = launch(
        tracking_server_command(root, host, port),
        root / "server.log",
        f"http://{host}:{port}",
        {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"},
    )
    if wait:
        server.wait_ready("/health", wait)
    return server
