"""The MLflow UI in a real browser: a run logged to the project's tracking server shows up.

Starts ``mlflow server`` through :func:`pmlv_utils.tracking.start_tracking_server` (127.0.0.1,
sqlite, local artifacts), logs a run with a metric, opens the run's page in headless
Chromium (the ``browser`` fixture in conftest.py) and waits until the run's name and metric
are rendered, then its artifacts tab lists the logged folder. Screenshot: build/mlflow_ui.png.
"""

from __future__ import annotations

import secrets

import pytest

from notebook_tools import REPO

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


def test_mlflow_ui_lists_a_logged_run(tmp_path, browser):
    import mlflow
    from selenium.webdriver.support.ui import WebDriverWait

    from pmlv_utils import tracking

    try:
        server = tracking.start_tracking_server(tmp_path / "mlflow", wait=600)
    except Exception as err:  # a server that cannot start is a skip with its reason
        pytest.skip(f"mlflow server did not start: {err}")
    try:
        mlflow.set_tracking_uri(server.url)
        experiment_id = mlflow.create_experiment("ui-check")
        run_name = f"ui-run-{secrets.token_hex(3)}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            mlflow.log_metric("test_accuracy", 0.9)
            mlflow.log_dict({"method": "ig", "steps": 64}, "explanations/provenance.json")
        # the run's page (the experiment page opens on MLflow 3's GenAI overview)
        browser.get(f"{server.url}/#/experiments/{experiment_id}/runs/{run.info.run_id}")
        WebDriverWait(browser, 240).until(
            lambda d: run_name in d.page_source and "test_accuracy" in d.page_source
        )
        run_page = f"{server.url}/#/experiments/{experiment_id}/runs/{run.info.run_id}"
        browser.get(f"{run_page}/artifacts")
        WebDriverWait(browser, 240).until(lambda d: "explanations" in d.page_source)
        shot = REPO / "build" / "mlflow_ui.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        server.stop()
