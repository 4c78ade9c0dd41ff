"""TensorBoard in a real browser: the trainer's kind of logs show a scalar chart.

Writes a small event file with ``tf.summary.scalar`` (what the trainer's TensorBoard logs hold),
starts ``tensorboard --logdir ... --host 127.0.0.1`` on a free port, opens it in headless
Chromium (the ``browser`` fixture in conftest.py) and waits until the scalar card of the tag is
rendered with a chart. The screenshot goes to build/tensorboard_ui.png.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests

from notebook_tools import REPO

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
TAG = "epoch_val_accuracy"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_scalars(logdir) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir / "validation"))
    with writer.as_default():
        for step, value in enumerate([0.4, 0.6, 0.7, 0.75]):
            tf.summary.scalar(TAG, value, step=step)
    writer.close()


def test_tensorboard_shows_a_scalar_chart(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _write_scalars(tmp_path / "logs")
    port = _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path / "logs")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"]
    log = open(tmp_path / "tensorboard.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"tensorboard exited: {(tmp_path / 'tensorboard.log').read_text()}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(1)
        browser.get(f"{url}/#timeseries")
        WebDriverWait(browser, 240).until(lambda d: TAG in d.page_source)
        WebDriverWait(browser, 120).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "scalar-card canvas, scalar-card svg")
        )
        shot = REPO / "build" / "tensorboard_ui.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
