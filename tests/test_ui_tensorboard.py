"""TensorBoard in a real browser: the trainer's kind of logs show a scalar chart.

Writes a small event file with ``tf.summary.scalar`` (what the trainer's TensorBoard logs hold),
starts TensorBoard with :func:`pmlv_utils.training.tensorboard.start_tensorboard` (127.0.0.1, a
free port), opens it in headless Chromium (the ``browser`` fixture in conftest.py) and waits
until the scalar card of the tag is rendered. The screenshot goes to build/tensorboard_ui.png.
"""

from __future__ import annotations

import pytest

from notebook_tools import REPO

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
TAG = "epoch_val_accuracy"


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

    from pmlv_utils.training.tensorboard import start_tensorboard

    _write_scalars(tmp_path / "logs")
    with start_tensorboard(tmp_path / "logs", timeout=180) as server:
        browser.get(f"{server.url}/#timeseries")
        WebDriverWait(browser, 240).until(lambda d: TAG in d.page_source)
        WebDriverWait(browser, 120).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "scalar-card canvas, scalar-card svg")
        )
        shot = REPO / "build" / "tensorboard_ui.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
