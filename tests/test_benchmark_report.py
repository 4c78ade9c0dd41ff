"""The benchmark report's number format does not depend on how fast the machine is."""

import math

from benchmarks.run import Result, plain_number


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
