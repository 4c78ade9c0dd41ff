"""A learner's path, in a real browser: JupyterLab opens a chapter notebook and runs it
through the UI.

Starts `jupyter lab` on 127.0.0.1 with a token, opens a copy of a chapter notebook (with the
harness's quick parameters written into its parameters cell, as a learner would edit them) in
headless Chromium driven by Selenium, clicks Run > Run All Cells, and waits for the rendered
outputs: a predicted flower label in the text and a plotted image.

Chromium comes from Debian (`tools/install_browser.sh`, which `make test` calls). When it
cannot be installed the test is skipped with that reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from notebook_tools import REPO, harness_settings, read

NOTEBOOK = REPO / os.environ.get("PMLV_UI_NOTEBOOK", "09_deploying/09a_inmemory.ipynb")
LABELS = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a parameterised copy of the notebook."""
    import papermill

    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "chromium/chromedriver not installed (tools/install_browser.sh could not install them)"
        )
    if not NOTEBOOK.exists():
        pytest.skip(f"{NOTEBOOK.relative_to(REPO)} does not exist yet")
    root = tmp_path / "lab"
    root.mkdir()
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(root / NOTEBOOK.name),
        prepare_only=True,
        kernel_name="python3",
        language="python",
        parameters=harness_settings(read(NOTEBOOK)).get("test_parameters", {}),
    )

    token, port = secrets.token_hex(16), _free_port()
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (no virtual scrolling), so all outputs are in the page.
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
    )
    env.pop("MPLBACKEND", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import requests

        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{port}", token, NOTEBOOK.name
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _click_menu(driver, wait, menu: str, item: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    wait.until(
        EC.element_to_be_clickable(
            (
                By.XPATH,
                f"//div[contains(@class,'lm-MenuBar-itemLabel') and normalize-space()='{menu}']",
            )
        )
    ).click()
    wait.until(
        EC.element_to_be_clickable(
            (
                By.XPATH,
                f"//div[contains(@class,'lm-Menu-itemLabel') and normalize-space()='{item}']",
            )
        )
    ).click()


def test_run_notebook_in_jupyterlab(lab, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, token, name = lab
    browser.get(f"{url}/lab/tree/{name}?token={token}")
    wait = WebDriverWait(browser, 120)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")))
    # A notebook without a stored kernel asks which one to start: take the default.
    time.sleep(3)
    for button in browser.find_elements(By.XPATH, "//dialog//button[normalize-space()='Select']"):
        button.click()
    status = (By.ID, "jp-main-statusbar")
    wait.until(lambda d: "Idle" in d.find_element(*status).text)
    _click_menu(browser, wait, "Run", "Run All Cells")

    def finished(driver):
        prompts = [
            p.text for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")
        ]
        errors = driver.find_elements(
            By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type*='error']"
        )
        if errors:
            return "error"
        return prompts and all(p.strip() not in ("[*]:", "[ ]:", "") for p in prompts) and "done"

    state = WebDriverWait(browser, 780, poll_frequency=2).until(finished)
    shot = REPO / "build" / "jupyterlab_screenshot.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
    assert state == "done", "a cell raised an error in JupyterLab: " + " | ".join(
        e.text[:300]
        for e in browser.find_elements(
            By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type*='error']"
        )
    )
    text = " ".join(o.text for o in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
    assert any(label in text for label in LABELS), (
        "no predicted flower label in the rendered outputs"
    )
    images = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    assert images and images[0].size["width"] > 50, "no rendered image output"
