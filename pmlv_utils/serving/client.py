"""Using a model server from a notebook, a test or a benchmark.

:func:`start_server` runs ``python -m pmlv_utils.serving`` as a subprocess on a free port and
returns a :class:`ServerHandle` (``.url``, ``.predict(...)``, ``.stop()``) once it answers
(:func:`wait_until_ready`, also used for ``mlflow models serve``). :func:`load_test` measures
throughput and latency from concurrent clients (:func:`plot_load_test` draws them);
:func:`pmlv_utils.predict.rest.predict_jsonl` (re-exported by this package) is batch
prediction over a JSON-lines file (Vertex's format).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import requests

from .. import safe_io
from .cli import DEFAULT_HOST
from .requests import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INSTANCES
from .service import DEFAULT_MODEL_NAME


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerHandle:
    """A model server running as a subprocess: ``.url``, ``.predict(...)``, ``.stop()``."""

    def __init__(
        self, process: subprocess.Popen, host: str, port: int, model_name: str, log_path: str
    ):
        self.process, self.host, self.port, self.model_name, self.log_path = (
            process,
            host,
            port,
            model_name,
            log_path,
        )
        # A server bound to every interface is reached on loopback (an allowed Host).
        connect = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)
        self.url = f"http://{connect}:{port}"

    @property
    def model_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}"

    @property
    def predict_url(self) -> str:
        return f"{self.model_url}:predict"

    @property
    def explain_url(self) -> str:
        return f"{self.model_url}:explain"

    @property
    def metadata_url(self) -> str:
        """TF Serving's model metadata (the signature_def map)."""
        return f"{self.model_url}/metadata"

    @property
    def v2_url(self) -> str:
        """The model's KServe v2 routes (``+ "/infer"``, ``+ "/ready"``); tritonclient's url
        is :attr:`url` without ``http://``."""
        return f"{self.url}/v2/models/{self.model_name}"

    def running(self) -> bool:
        return self.process.poll() is None

    def post(self, route: str, body: Any, timeout: float = 120.0):
        """POST a JSON body to ``:predict`` / ``:explain``; returns the ``requests`` response."""
        url = {"predict": self.predict_url, "explain": self.explain_url}.get(route, route)
        return requests.post(url, json=body, timeout=timeout)

    def predict(self, instances: list, signature_name: str | None = None) -> list[dict]:
        """The predictions for ``instances``; RuntimeError with the server's message on 4xx/5xx."""
        body: dict[str, Any] = {"instances": instances}
        if signature_name:
            body["signature_name"] = signature_name
        resp = self.post("predict", body)
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {safe_io.http_error_text(resp)}")
        return resp.json()["predictions"]

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"ServerHandle(url={self.url!r}, running={self.running()})"


def start_server(
    model_dir: str | os.PathLike,
    allowed_roots: Sequence[str | os.PathLike] = (),
    port: int | None = None,
    host: str = DEFAULT_HOST,
    model_name: str = DEFAULT_MODEL_NAME,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    extra_args: Sequence[str] = (),
    timeout: float = 180.0,
    env: dict | None = None,
) -> ServerHandle:
    """Start ``python -m pmlv_utils.serving`` on a free port and wait until it answers."""
    port = port or free_port(host)
    cmd = [
        sys.executable,
        "-m",
        "pmlv_utils.serving",
        "--model_dir",
        str(model_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--model_name",
        model_name,
        "--max_instances",
        str(max_instances),
        "--max_body_bytes",
        str(max_body_bytes),
        *extra_args,
    ]
    for root in allowed_roots:
        cmd += ["--allowed_root", str(root)]
    log = tempfile.NamedTemporaryFile(prefix="pmlv_server_", suffix=".log", delete=False)
    child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    package_root = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, child_env.get("PYTHONPATH")) if p
    )
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env)
    handle = ServerHandle(process, host, port, model_name, log.name)
    atexit.register(handle.stop)
    wait_until_ready(
        process, handle.model_url, timeout, "the model server", handle.log_tail, handle.stop
    )
    return handle


def wait_until_ready(
    process: subprocess.Popen,
    url: str,
    timeout: float,
    name: str,
    log_tail: Callable[[], str],
    stop: Callable[[], None],
    poll_s: float = 0.3,
) -> None:
    """Poll ``url`` until it answers 200.

    Raises (with the log's tail) if ``process`` exits or ``timeout`` runs out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}:\n{log_tail()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(poll_s)
    stop()
    raise TimeoutError(f"{name} was not ready after {timeout:.0f} s:\n{log_tail()}")


def load_test(
    url: str, body: dict, clients: int, requests_total: int, timeout: float = 60.0
) -> dict:
    """POST ``body`` ``requests_total`` times from ``clients`` threads (keep-alive sessions).

    Returns requests/s, images/s (instances per request x requests/s), p50/p99 latency (ms)
    and the count of non-200 answers.
    """
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    per_client = [
        requests_total // clients + (1 if i < requests_total % clients else 0)
        for i in range(clients)
    ]
    barrier = threading.Barrier(clients + 1)

    def client(n):
        latencies, failures = [], 0
        with requests.Session() as session:
            session.post(url, data=data, headers=headers, timeout=timeout)  # connect + warm up
            barrier.wait()
            for _ in range(n):
                t = time.perf_counter()
                resp = session.post(url, data=data, headers=headers, timeout=timeout)
                latencies.append(time.perf_counter() - t)
                failures += resp.status_code != 200
        return latencies, failures

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, n) for n in per_client]
        barrier.wait()
        start = time.perf_counter()
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - start
    latencies = np.array([x for lat, _ in results for x in lat]) * 1000
    instances = len(body.get("instances", []))
    return {
        "clients": clients,
        "requests": int(latencies.size),
        "instances_per_request": instances,
        "errors": int(sum(f for _, f in results)),
        "seconds": round(seconds, 3),
        "requests_per_s": round(latencies.size / seconds, 1),
        "images_per_s": round(latencies.size * instances / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
    }


def plot_load_test(
    rows: Sequence[dict], in_memory_images_per_s: float | None = None, title: str | None = None
):
    """Throughput (images/s) and p50/p99 latency against the number of concurrent clients."""
    clients = [r["clients"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(clients, [r["images_per_s"] for r in rows], "o-", label="REST server")
    if in_memory_images_per_s:
        left.axhline(
            in_memory_images_per_s, color="gray", linestyle="--", label="in memory, batched"
        )
        left.axhline(
            0.7 * in_memory_images_per_s, color="gray", linestyle=":", label="goal: 0.7 x in memory"
        )
    left.set(xlabel="concurrent clients", ylabel="images / s", title="throughput", xticks=clients)
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.plot(clients, [r["p50_ms"] for r in rows], "o-", label="p50")
    right.plot(clients, [r["p99_ms"] for r in rows], "s--", label="p99")
    right.set(
        xlabel="concurrent clients",
        ylabel="latency per request (ms)",
        title="latency",
        xticks=clients,
    )
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
