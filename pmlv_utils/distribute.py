"""Distribution strategies for the trainer (the book's ``--distribute`` flag).

Taught in 07_training/07d_distribute.ipynb ("Inside strategy.scope()": a model and one step
written by hand; then the trainer under each mode).

| mode                     | strategy                                                  |
|--------------------------|-----------------------------------------------------------|
| "cpu"                    | the default strategy (one device, no distribution)        |
| "gpus_one_machine"       | MirroredStrategy over the machine's GPUs (or CPUs if none) |
| "gpus_multiple_machines" | MultiWorkerMirroredStrategy, cluster from ``TF_CONFIG``   |
| "tpu"                    | TPUStrategy through a TPUClusterResolver                  |

Create the strategy at the very start of a program (before other TensorFlow calls):
MultiWorkerMirroredStrategy refuses to start once TensorFlow's runtime is initialised.

:func:`local_cluster_configs` and :func:`launch_local_workers` run a real multi-worker job
on one machine: several processes on 127.0.0.1, each with its own ``TF_CONFIG``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

MODES = ("cpu", "gpus_one_machine", "gpus_multiple_machines", "tpu")

# One strategy object per mode and process: a second MirroredStrategy in the same process
# reuses collective-op keys of the first and fails on models of another shape (TF 2.21).
_STRATEGIES: dict = {}


def create_strategy(mode: str = "cpu", tpu: str | None = None):
    """A ``tf.distribute`` strategy for one of :data:`MODES` (ValueError otherwise).

    Without GPUs, "gpus_one_machine" mirrors over the logical CPU devices (one unless
    :func:`use_logical_cpus` split the CPU). Asking twice for a mode gives the same object.
    """
    if mode not in MODES:
        raise ValueError(f"distribute mode must be one of {MODES}, got {mode!r}")
    if mode == "cpu":
        return tf.distribute.get_strategy()  # the default: one device, no-op scope
    if mode in _STRATEGIES:
        return _STRATEGIES[mode]
    if mode == "gpus_one_machine":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return _STRATEGIES.setdefault(mode, tf.distribute.MirroredStrategy(devices=devices))
    if mode == "gpus_multiple_machines":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "gpus_multiple_machines needs the TF_CONFIG environment variable "
                "(cluster and task); see local_cluster_configs()"
            )
        return _STRATEGIES.setdefault(mode, tf.distribute.MultiWorkerMirroredStrategy())
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise RuntimeError(
            f"no TPU found (tpu={tpu or 'auto'!r}): mode 'tpu' runs on a Cloud "
            f"TPU VM or a Vertex TPU job ({type(e).__name__}: {e})"
        ) from e
    return _STRATEGIES.setdefault(mode, tf.distribute.TPUStrategy(resolver))


def use_logical_cpus(count: int = 2) -> list[str]:
    """Split the CPU into ``count`` logical devices (so MirroredStrategy has replicas).

    Must run before TensorFlow initialises its devices (before any op); raises
    RuntimeError otherwise. Returns the logical CPU device names.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` TCP ports that are free on ``host`` right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_cluster_configs(num_workers: int = 2, host: str = "127.0.0.1") -> list[dict]:
    """One ``TF_CONFIG`` dict per worker of a cluster on this machine (worker 0 is chief)."""
    workers = [f"{host}:{port}" for port in free_ports(num_workers, host)]
    return [
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        for i in range(num_workers)
    ]


def launch_local_workers(
    args: list[str],
    num_workers: int = 2,
    timeout: float = 900,
    log_dir: str | None = None,
    env: dict | None = None,
) -> list[dict]:
    """Run ``python <args>`` in ``num_workers`` processes forming one TF cluster on 127.0.0.1.

    Each process gets its own ``TF_CONFIG``. Waits for all; returns per worker
    ``{"index", "returncode", "seconds", "log"}`` (log: path of its stdout+stderr).
    Raises RuntimeError naming the worker and the end of its log if one fails.
    """
    log_dir = log_dir or tempfile.mkdtemp(prefix="pmlv_workers_")
    os.makedirs(log_dir, exist_ok=True)
    start = time.perf_counter()
    procs = [
        _start_worker(i, tf_config, args, log_dir, env)
        for i, tf_config in enumerate(local_cluster_configs(num_workers))
    ]
    results = []
    try:
        for i, proc, log_file, log_path in procs:
            proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
            log_file.close()
            results.append(
                {
                    "index": i,
                    "returncode": proc.returncode,
                    "seconds": round(time.perf_counter() - start, 1),
                    "log": log_path,
                }
            )
    finally:
        for _, proc, log_file, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log_file.close()
    for r in results:
        if r["returncode"] != 0:
            with open(r["log"]) as f:
                tail = "".join(f.readlines()[-15:])
            raise RuntimeError(
                f"worker {r['index']} exited with {r['returncode']}; end of {r['log']}:\n{tail}"
            )
    return results


def _start_worker(index: int, tf_config: dict, args: list[str], log_dir: str, env: dict | None):
    """``(index, process, log file, log path)`` of one worker started with its TF_CONFIG."""
    worker_env = {**os.environ, **(env or {}), "TF_CONFIG": json.dumps(tf_config)}
    log_path = os.path.join(log_dir, f"worker_{index}.log")
    log_file = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, *args], env=worker_env, stdout=log_file, stderr=subprocess.STDOUT
    )
    return index, proc, log_file, log_path


def is_chief(strategy) -> bool:
    """Whether this process writes the outputs: always, except under a multi-worker cluster,
    where the chief does (or worker 0 when the cluster has no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    cluster = resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id) == 0


def describe_strategy(strategy) -> dict:
    """Kind, number of replicas and devices of a strategy (for tables)."""
    try:
        devices = strategy.extended.worker_devices
    except (AttributeError, RuntimeError):  # the default strategy has none to list
        devices = ()
    return {
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "devices": ", ".join(d.split("/")[-1] if "device:" in d else d for d in devices)
        or "default",
    }


def compare_weights(model_a, model_b) -> dict:
    """How far two models' weights are apart (models or .keras paths): the largest absolute
    difference; that difference over the largest weight of the model (``rel_to_largest``); and
    the largest per-variable ratio of difference to the variable's own scale (``max_rel_diff``,
    large for variables that stay near zero, such as batch norm's beta)."""
    load = lambda m: keras.models.load_model(m) if isinstance(m, (str, os.PathLike)) else m  # noqa: E731
    a, b = load(model_a), load(model_b)
    max_abs, max_rel, largest = 0.0, 0.0, 0.0
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        diff = float(np.max(np.abs(wa - wb))) if wa.size else 0.0
        scale = float(np.max(np.abs(wa))) if wa.size else 0.0
        max_abs, largest = max(max_abs, diff), max(largest, scale)
        max_rel = max(max_rel, diff / scale if scale else 0.0)
    return {
        "max_abs_diff": max_abs,
        "rel_to_largest": max_abs / largest if largest else 0.0,
        "max_rel_diff": max_rel,
        "num_variables": len(a.get_weights()),
    }
