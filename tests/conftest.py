"""Test harness plumbing: per-notebook timeouts, a shared workspace, and the timing table."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from notebook_tools import REPO
from pmlv_utils.workspace import NOTEBOOK_PATHS_ENV

BUILD = REPO / "build"
TIMINGS: list[tuple[str, str, float]] = []


def pytest_configure(config):
    # Notebooks share one workspace per test session, so upstream artifacts are built once.
    os.environ.setdefault("PMLV_WORKSPACE", str(BUILD / "workspace"))
    # ... and show paths as the committed outputs do ($PMLV_WORKSPACE/…, see display_path)
    os.environ.setdefault(NOTEBOOK_PATHS_ENV, "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    # Unit tests first (fast failures), then the notebooks, then what reads their results.
    order = lambda item: (
        2
        if item.get_closest_marker("benchmark") or item.get_closest_marker("browser")  # noqa: E731
        else 1
        if item.get_closest_marker("notebook")
        else 0
    )
    items.sort(key=order)
    for item in items:
        timeout = getattr(item, "callspec", None) and item.callspec.params.get("timeout_s")
        if timeout:
            item.add_marker(pytest.mark.timeout(timeout))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    start = time.perf_counter()
    outcome = yield
    if item.get_closest_marker("notebook"):
        status = "failed" if outcome.excinfo else "passed"
        TIMINGS.append(
            (item.callspec.params.get("nb_id", item.name), status, time.perf_counter() - start)
        )
        _write_timings()  # kept current, so later tests (the benchmarks' P8) can read it


def _write_timings() -> None:
    out = BUILD / "notebook_timings.tsv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "notebook\tstatus\tseconds\n" + "".join(f"{n}\t{st}\t{s:.1f}\n" for n, st, s in TIMINGS)
    )


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    tr = terminalreporter
    tr.section("notebook timings")
    width = max(len(n) for n, _, _ in TIMINGS)
    for name, status, secs in TIMINGS:
        tr.write_line(f"{name:<{width}}  {status:<7} {secs:8.1f} s")
    tr.write_line(f"{'total':<{width}}  {'':<7} {sum(s for _, _, s in TIMINGS):8.1f} s")
    _write_timings()


# --------------------------------------------------------------------------------------
# Shared fixtures (test files never import each other)
# --------------------------------------------------------------------------------------

TINY_LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
TINY_SIZE = 32


def _make_tiny_assets(base: Path) -> dict:
    """A tiny untrained exported model and a few images (built once, reused by every file).

    Paths: ``export``, ``images`` (folder of good JPEG/PNG files), ``good`` (list), ``corrupt``
    (a .jpg that is not an image), ``outside`` (an image outside ``images``).
    """
    base.mkdir(parents=True, exist_ok=True)
    images, export_dir = base / "images", base / "export"
    good = [images / f"flower_{i:02d}.{'png' if i % 5 == 4 else 'jpg'}" for i in range(12)]
    corrupt = images / "corrupt.jpg"
    outside = base / "outside" / "secret.jpg"
    if not (export_dir / "saved_model.pb").exists():
        from PIL import Image

        from pmlv_utils import export, model

        rng = np.random.default_rng(0)
        images.mkdir(exist_ok=True)
        outside.parent.mkdir(exist_ok=True)
        for i, path in enumerate(good + [outside]):
            pixels = rng.integers(0, 256, (24 + 3 * i, 40, 3), dtype=np.uint8)  # varied sizes
            Image.fromarray(pixels).save(path)
        corrupt.write_bytes(b"\xff\xd8 this is not really a JPEG")
        tiny = model.build_model(
            "small_cnn", num_classes=len(TINY_LABELS), img_size=TINY_SIZE, compile=False
        )
        export.export_saved_model(tiny, str(export_dir), TINY_LABELS, TINY_SIZE)
    return {
        "export": export_dir,
        "images": images,
        "good": [str(p) for p in good],
        "corrupt": str(corrupt),
        "outside": str(outside),
        "labels": list(TINY_LABELS),
        "img_size": TINY_SIZE,
    }


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """The tiny exported model and images of :func:`_make_tiny_assets` (one per session)."""
    return _make_tiny_assets(tmp_path_factory.getbasetemp() / "pmlv_tiny_serving")


@pytest.fixture(scope="session")
def tiny_pipeline_settings():
    """Tiny pipeline settings shared by test_pipeline.py and test_course.py (same kfp cache;
    easy data, as ``course --quick`` uses)."""
    return dict(images_per_class=20, seed=42, img_size=32, epochs=2, difficulty="easy")


@pytest.fixture(scope="session")
def tiny_ws(tmp_path_factory):
    """The workspace test_pipeline.py and test_course.py share."""
    folder = tmp_path_factory.getbasetemp() / "pipeline-shared-ws"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium driven by Selenium (skipped when tools/install_browser.sh could not
    install chromium/chromedriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("chromium/chromedriver not installed (tools/install_browser.sh could not)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
