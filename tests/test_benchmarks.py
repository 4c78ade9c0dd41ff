"""`make bench` in quick mode: every benchmark produces a number (no speed is asserted here)."""

import math
import re

import pytest

from notebook_tools import REPO

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(900)]
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"  # plain_number's output: a plain decimal, any machine speed


def section(text: str, key: str) -> list[str]:
    """The detail lines of one benchmark's section of the report."""
    lines = text.split(f"\n## {key}: ", 1)[1].split("\n## ", 1)[0].splitlines()
    return [line[2:] for line in lines if line.startswith("- ")]


def test_quick_benchmarks_produce_numbers(tmp_path):
    from benchmarks import run

    out = tmp_path / "RESULTS.md"
    status = run.main(["--quick", "--out", str(out)])
    text = out.read_text()
    assert status == 0, text
    for key in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P9", "P10", "P11"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {key} |"))
        number = re.match(r"\s*([-0-9.e+]+|nan)\s", row.split("|", 3)[3])
        assert number and math.isfinite(float(number.group(1))), row
    p8 = next(line for line in text.splitlines() if line.startswith("| P8 |"))
    if (
        REPO / "build" / "notebook_timings.tsv"
    ).exists():  # written by the notebook harness (run before)
        assert re.match(r"\s*[0-9.]+\s", p8.split("|", 3)[3]), p8
    check_p5_curve(section(text, "P5"), run.QUICK.batch_sizes)
    check_p9_figures(section(text, "P9"))


def test_notebook_seconds_reads_the_times_table(tmp_path):
    from benchmarks import explain_bench

    times = tmp_path / "NOTEBOOK_TIMES.md"
    times.write_text(
        "| notebook | wall s | load | when |\n|---|---:|---:|---|\n"
        "| 10_mlops/10b_explain.ipynb | 44 | 0.3 | 2026-12-03 12:00 |\n"
    )
    assert explain_bench.notebook_seconds(times) == {"10_mlops/10b_explain.ipynb": 44.0}
    assert explain_bench.notebook_seconds(tmp_path / "missing.md") == {}


def check_p5_curve(details: list[str], batch_sizes) -> None:
    """Every batch size of the in-memory curve has a rate; the REST best names its clients."""
    curve = {}
    for line in details:
        m = re.fullmatch(rf"in-memory, batch of (\d+): {NUMBER} images/s( \(best\))?", line)
        if m:
            curve[int(m.group(1))] = (float(m.group(2)), bool(m.group(3)))
    assert sorted(curve) == sorted(batch_sizes), details
    assert all(rate > 0 for rate, _ in curve.values()), curve
    (best,) = [b for b, (_, is_best) in curve.items() if is_best]
    assert curve[best][0] == max(rate for rate, _ in curve.values()), curve
    rest = [line for line in details if line.startswith("REST, ")]
    assert [int(re.match(r"REST, (\d+) clients", line).group(1)) for line in rest] == [1, 4, 8]
    assert all(re.search(r"errors 0,", line) for line in rest), rest
    summary = next(line for line in details if line.startswith("REST best: "))
    assert re.fullmatch(
        rf"REST best: (1|4|8) clients, {NUMBER} images/s = {NUMBER}× in-memory at its best batch "
        rf"\({best} per call, {NUMBER} images/s\)",
        summary,
    ), summary


def check_p9_figures(details: list[str]) -> None:
    """Idle and peak RSS are numbers, the peak is above idle, over-limit requests got a 4xx."""
    text = "\n".join(details)
    assert re.search(
        r"limits: [0-9,]+ pixels per image .*, [0-9,]+ per request, \d+ instances", text
    )
    idle = float(re.search(rf"idle RSS after model load and warm-up: {NUMBER} MiB", text).group(1))
    peaks = [float(x) for x in re.findall(rf"peak RSS during [^:]+: {NUMBER} MiB", text)]
    assert len(peaks) == 2 and all(p >= idle > 0 for p in peaks), details
    assert re.search(rf"bound for these requests: [0-9,]+ px × \d+ B = {NUMBER} MiB", text)
    refused = re.findall(r"over the limits, [^:]+: HTTP (\d+) ", text)
    assert len(refused) == 3 and all(400 <= int(code) < 500 for code in refused), details
