"""`make bench` in quick mode: every benchmark produces a number (no speed is asserted here)."""

import math
import re

import pytest

from notebook_tools import REPO

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(900)]


def test_quick_benchmarks_produce_numbers(tmp_path):
    from benchmarks import run

    out = tmp_path / "RESULTS.md"
    status = run.main(["--quick", "--out", str(out)])
    text = out.read_text()
    assert status == 0, text
    for key in ("P1", "P2", "P3", "P4", "P5", "P6", "P7"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {key} |"))
        number = re.match(r"\s*([-0-9.e+]+|nan)\s", row.split("|", 3)[3])
        assert number and math.isfinite(float(number.group(1))), row
    p8 = next(line for line in text.splitlines() if line.startswith("| P8 |"))
    if (
        REPO / "build" / "notebook_timings.tsv"
    ).exists():  # written by the notebook harness (run before)
        assert re.match(r"\s*[0-9.]+\s", p8.split("|", 3)[3]), p8
