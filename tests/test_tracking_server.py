"""A real MLflow tracking server started by the project (sqlite backend, local artifact root)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from pmlv_utils import tracking

    root = tmp_path_factory.mktemp("mlflow-server")
    try:
        running = tracking.start_tracking_server(root, wait=300)
    except (RuntimeError, TimeoutError, OSError) as err:
        pytest.skip(f"mlflow server could not start: {str(err)[:300]}")
    print(f"mlflow server ready in {running.wait_ready():.1f} s at {running.url}")
    yield running, root
    running.stop()


def test_command_is_loopback_one_worker_sqlite(tmp_path):
    from pmlv_utils import tracking

    cmd = tracking.tracking_server_command(tmp_path, port=5055)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--workers") + 1] == "1"
    assert cmd[cmd.index("--backend-store-uri") + 1].startswith("sqlite:///")
    assert cmd[cmd.index("--artifacts-destination") + 1].startswith(str(tmp_path.resolve()))


@pytest.mark.slow
def test_runs_logged_to_the_server_are_read_back(server, tmp_path):
    import json

    import mlflow

    running, root = server
    assert running.url.startswith("http://127.0.0.1:")
    client = mlflow.MlflowClient(running.url)
    experiment_id = client.create_experiment("server-test")
    run = client.create_run(experiment_id, run_name="logged-over-http")
    client.log_param(run.info.run_id, "max_evals", "64")
    client.log_metric(run.info.run_id, "images_per_s", 1.5)
    client.log_dict(run.info.run_id, {"seed": 3}, "explanations/provenance.json")
    client.set_terminated(run.info.run_id)

    fresh = mlflow.MlflowClient(running.url)  # a new client: everything comes from the server
    back = fresh.get_run(run.info.run_id)
    assert back.data.params == {"max_evals": "64"}
    assert back.data.metrics == {"images_per_s": 1.5}
    assert [a.path for a in fresh.list_artifacts(run.info.run_id, "explanations")] == [
        "explanations/provenance.json"
    ]
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="explanations/provenance.json",
        tracking_uri=running.url,
        dst_path=str(tmp_path),
    )
    assert json.loads(open(local).read()) == {"seed": 3}
    stored = list((root / "artifacts").rglob("provenance.json"))
    assert len(stored) == 1  # the server wrote it under its own artifact root
    assert (root / "server.db").exists()


@pytest.mark.slow
def test_server_stops(server):
    running, _ = server
    assert running.stop() is not None and running.process.poll() is not None
