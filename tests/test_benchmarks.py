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
        number = re.search(r"\| ([-0-9.e+]+|nan) ", row.split("|", 3)[3])
        assert number and math.isfinite(float(number.group(1))), row
    assert "| P8 |" in text
