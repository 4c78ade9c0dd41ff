"""timing.time_it and timing_table: positive numbers, medians, ratios."""

import math

import pytest

from pmlv_utils import timing


def _busy(n=20000):
    return sum(i * i for i in range(n))


def test_time_it_returns_positive_medians():
    r = timing.time_it(_busy, repeats=3, progress=False)
    assert r["cpu_s"] > 0 and r["wall_s"] > 0
    assert len(r["cpu_runs"]) == len(r["wall_runs"]) == 3
    assert min(r["wall_runs"]) <= r["wall_s"] <= max(r["wall_runs"])
    assert r["value"] == _busy()


def test_time_it_setup_is_not_timed_and_feeds_fn():
    import time

    calls = []

    def setup():
        time.sleep(0.05)
        return 7

    r = timing.time_it(lambda x: calls.append(x), repeats=2, setup=setup, progress=False)
    assert calls == [7, 7]
    assert r["wall_s"] < 0.05


def test_time_it_rejects_zero_repeats():
    with pytest.raises(ValueError):
        timing.time_it(_busy, repeats=0)


def test_timing_table_ratios():
    results = {"plain": {"cpu_s": 4.0, "wall_s": 8.0}, "fast": {"cpu_s": 6.0, "wall_s": 2.0}}
    df = timing.timing_table(
        results, book={"plain": 7.99, "fast": {"cpu_s": 1, "wall_s": 5.23}}, items=100
    )
    assert list(df.index) == ["plain", "fast"]
    assert df.loc["fast", "speedup"] == pytest.approx(4.0)
    assert df.loc["fast", "cpu_ratio"] == pytest.approx(1.5)
    assert df.loc["fast", "cores_busy"] == pytest.approx(3.0)
    assert df.loc["fast", "items_per_s"] == pytest.approx(50.0)
    assert df.loc["fast", "book_speedup"] == pytest.approx(7.99 / 5.23)
    df2 = timing.timing_table(results, baseline="fast", book={"plain": 1.0})
    assert df2.loc["plain", "speedup"] == pytest.approx(0.25)
    assert math.isnan(df2.loc["plain", "book_speedup"])
    with pytest.raises(KeyError):
        timing.timing_table(results, baseline="nope")


def test_plot_speedups_draws_one_panel_per_table():
    import matplotlib

    matplotlib.use("Agg")
    results = {"plain": {"cpu_s": 4.0, "wall_s": 8.0}, "fast": {"cpu_s": 6.0, "wall_s": 2.0}}
    df = timing.timing_table(results, book={"plain": 2.0, "fast": 1.0})
    fig = timing.plot_speedups({"a": df, "b": df}, reference={"goal": 3})
    assert len(fig.axes) == 2


def test_plot_rates_one_bar_per_row():
    import matplotlib

    matplotlib.use("Agg")
    results = {"plain": {"cpu_s": 4.0, "wall_s": 8.0}, "fast": {"cpu_s": 6.0, "wall_s": 2.0}}
    df = timing.timing_table(results, items=100)
    fig = timing.plot_rates({"read": df, "train": df}, ceiling=60.0)
    assert len(fig.axes[0].patches) == 4
