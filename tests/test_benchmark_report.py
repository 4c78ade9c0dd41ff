"""The benchmark report's number format does not depend on how fast the machine is."""

import math

import pytest

from benchmarks import run
from benchmarks.run import Result, plain_number, rate_line


def test_plain_number_never_uses_exponent_form():
    for value, text in (
        (1070.4, "1070"),
        (458.2, "458"),
        (77.66, "77.7"),
        (0.266, "0.266"),
        (0.0, "0"),
        (0.00012, "0.000120"),
        (123456.0, "123456"),
    ):
        assert plain_number(value) == text
        assert "e" not in plain_number(value)
    assert plain_number(float("nan")) == "nan"


def test_row_of_a_slow_suite_parses_as_a_plain_decimal():
    row = Result("P8", "notebook harness, total", 1070.0, "s", "≤ 1800 s", True).row()
    cell = row.split("|")[3].split()[0]
    assert cell == "1070" and math.isfinite(float(cell))


def test_rate_line_shows_slow_rates_with_three_significant_digits():
    rate, line = rate_line("naive", 25, 606.5)
    assert rate == pytest.approx(25 / 606.5)
    assert line == "naive: 25 images in 606 s = 0.0412 images/s (24.3 s per image)"
    assert rate_line("shared", 200, 7.81, " (start-up)")[1] == (
        "shared: 200 images in 7.81 s = 25.6 images/s (0.0391 s per image) (start-up)"
    )
    for images, seconds in ((0, 5.0), (10, 0.0), (10, float("nan"))):
        with pytest.raises(ValueError, match="nothing measured"):
            rate_line("x", images, seconds)


class _FakeJob:
    """A batch prediction whose rows are files in its output folder (gone with the folder)."""

    def __init__(self, prefix, n, seconds, mode):
        self.prefix, self.seconds, self.mode = prefix, seconds, mode
        with open(f"{prefix}-predictions.jsonl", "w") as f:
            f.write("{}\n" * n)

    def output_counts(self):
        try:
            with open(f"{self.prefix}-predictions.jsonl") as f:
                return {"predictions": len(f.readlines()), "dead_letters": 0}
        except FileNotFoundError:
            return {"predictions": 0, "dead_letters": 0}


def test_p4_reports_both_rates_measured_before_the_outputs_are_removed(monkeypatch):
    import sys
    from types import SimpleNamespace

    import pmlv_utils

    seconds = {"shared": 8.0, "naive": 50.0}
    predict = SimpleNamespace(  # stands in for pmlv_utils.predict (no TensorFlow needed)
        run_batch_prediction=lambda names, export, prefix, mode: _FakeJob(
            prefix, len(names), seconds[mode], mode
        )
    )
    monkeypatch.setitem(sys.modules, "pmlv_utils.predict", predict)
    monkeypatch.setattr(pmlv_utils, "predict", predict, raising=False)
    files = [f"img_{i}.jpg" for i in range(200)]
    fake = SimpleNamespace(
        s=SimpleNamespace(predict_images=200), export_dir="export", test_files=lambda n: files[:n]
    )
    result = run.p4_beam_predict(fake)
    assert result.details == [
        "shared+batched: 200 images in 8 s = 25 images/s (0.04 s per image) "
        "(job start-up included)",
        "naive (model loaded per image): 25 images in 50 s = 0.5 images/s (2 s per image)",
    ]
    assert result.figure == pytest.approx(50.0) and result.met
