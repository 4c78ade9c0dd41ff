"""Test harness plumbing: per-notebook timeouts, a shared workspace, and the timing table."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from notebook_tools import REPO

BUILD = REPO / "build"
TIMINGS: list[tuple[str, str, float]] = []


def pytest_configure(config):
    # Notebooks share one workspace per test session, so upstream artifacts are built once.
    os.environ.setdefault("PMLV_WORKSPACE", str(BUILD / "workspace"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    # Unit tests first (fast failures), then the notebooks, then what reads their results.
    order = lambda item: (2 if item.get_closest_marker("benchmark") or item.get_closest_marker("browser")  # noqa: E731
                          else 1 if item.get_closest_marker("notebook") else 0)
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
        TIMINGS.append((item.callspec.params.get("nb_id", item.name), status, time.perf_counter() - start))
        _write_timings()  # kept current, so later tests (the benchmarks' P8) can read it


def _write_timings() -> None:
    out = BUILD / "notebook_timings.tsv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("notebook\tstatus\tseconds\n" + "".join(f"{n}\t{st}\t{s:.1f}\n" for n, st, s in TIMINGS))


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
