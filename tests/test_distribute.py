"""pmlv_utils.distribute: the strategy factory, logical CPUs, local multi-worker launching."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

tf = pytest.importorskip("tensorflow")

from pmlv_utils import distribute  # noqa: E402


def test_cpu_is_the_default_strategy():
    strategy = distribute.create_strategy("cpu")
    assert strategy is tf.distribute.get_strategy()
    assert distribute.describe_strategy(strategy)["replicas"] == 1


def test_one_machine_is_mirrored_and_created_once():
    strategy = distribute.create_strategy("gpus_one_machine")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert distribute.create_strategy("gpus_one_machine") is strategy
    assert strategy.num_replicas_in_sync == len(
        tf.config.list_logical_devices("GPU")
    ) or strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))


def test_unknown_mode_is_a_value_error():
    with pytest.raises(ValueError, match="must be one of"):
        distribute.create_strategy("two_gpus")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.create_strategy("gpus_multiple_machines")


def test_tpu_without_a_tpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no TPU found"):
        distribute.create_strategy("tpu")


def test_local_cluster_configs():
    configs = distribute.local_cluster_configs(3)
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


def test_launch_local_workers_gives_each_its_tf_config(tmp_path):
    script = "import json, os; print(json.dumps(json.loads(os.environ['TF_CONFIG'])['task']))"
    results = distribute.launch_local_workers(
        ["-c", script], num_workers=2, timeout=60, log_dir=str(tmp_path)
    )
    tasks = [json.loads(open(r["log"]).read().strip().splitlines()[-1]) for r in results]
    assert tasks == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]


def test_a_failing_worker_is_reported_with_its_log(tmp_path):
    script = (
        "import json, os, sys; i = json.loads(os.environ['TF_CONFIG'])['task']['index'];"
        "print('boom from', i); sys.exit(3 if i == 1 else 0)"
    )
    with pytest.raises(RuntimeError, match=r"worker 1 exited with 3(.|\n)*boom from 1"):
        distribute.launch_local_workers(
            ["-c", script], num_workers=2, timeout=60, log_dir=str(tmp_path)
        )


MIRRORED_VS_ONE_DEVICE = textwrap.dedent("""
    import json, sys
    from pmlv_utils import distribute
    print(json.dumps(distribute.use_logical_cpus(2)))
    import numpy as np, tensorflow as tf
    import keras
    from pmlv_utils.model import build_model
    from pmlv_utils.training import fit_distributed
    x = np.random.default_rng(0).random((70, 24, 24, 3)).astype("float32")
    y = np.arange(70) % 5
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # 32 + 32 + 6 (uneven split)
    out = {}
    for mode in ("cpu", "gpus_one_machine"):
        strategy = distribute.create_strategy(mode)
        with strategy.scope():
            # plain SGD: Adam divides each gradient by its own running scale, so rounding in a
            # near-zero gradient (batch norm's beta) becomes a full-size step of either sign
            model = build_model(img_size=24, seed=1, augment=False, compile=False)
            model.compile(optimizer=keras.optimizers.SGD(0.05),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        if mode == "cpu":  # Keras fit on one device ...
            hist = model.fit(ds, epochs=2, verbose=0, shuffle=False).history
        else:              # ... against the trainer's loop on two replicas
            hist = fit_distributed(model, strategy, ds, ds, 2, 0, keras.callbacks.Callback(), None)
        out[mode] = {"replicas": strategy.num_replicas_in_sync, "loss": hist["loss"],
                     "model": model}
    diff = distribute.compare_weights(out["cpu"]["model"], out["gpus_one_machine"]["model"])
    print(json.dumps({m: {k: v for k, v in r.items() if k != "model"} for m, r in out.items()}))
    print(json.dumps(diff))
""")


def test_mirrored_over_two_logical_cpus_trains_like_one_device():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_VS_ONE_DEVICE],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    devices, runs, diff = [json.loads(line) for line in proc.stdout.strip().splitlines()[-3:]]
    assert len(devices) == 2
    assert runs["cpu"]["replicas"] == 1 and runs["gpus_one_machine"]["replicas"] == 2
    # the same global batches and synchronised batch norm: the same steps up to rounding
    assert runs["gpus_one_machine"]["loss"] == pytest.approx(runs["cpu"]["loss"], rel=1e-3)
    # measured: 2e-4 with synchronised batch norm, 4e-2 with per-replica batch norm
    assert diff["rel_to_largest"] < 2e-3
