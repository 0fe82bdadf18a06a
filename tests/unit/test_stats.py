import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.stats import median_ci, quantile, sample_stddev, summarize


def test_known_values():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert (s.n, s.min, s.max, s.median, s.mean) == (10, 1.0, 10.0, 5.5, 5.5)
    assert s.stddev == pytest.approx(3.0276503540974917)  # sample (n-1), not population
    assert s.p95 == pytest.approx(9.55)
    assert s.ci95_median == (2.0, 9.0)  # order statistics 2 and 9 of 10: coverage 97.9%


def test_variance_uses_every_run_not_the_last_one():
    # The prior-art bug: a loop that overwrote its accumulator kept only the last run.
    values = [100.0, 101.0, 99.0, 150.0]
    assert sample_stddev(values) == pytest.approx(statistics.stdev(values))
    assert sample_stddev(values) > 20


def test_large_close_values_keep_precision():
    assert sample_stddev([1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16]) == pytest.approx(5.477225575, rel=1e-9)


def test_small_samples_are_honest():
    assert summarize([]) is None
    one = summarize([3.0])
    assert one.stddev is None and one.ci95_median is None and one.median == 3.0
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # n=5 cannot reach 95%
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (1.0, 6.0)  # n=6: 96.9%


def test_quantile_matches_linear_interpolation():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=2, max_size=60))
def test_property_against_statistics_module(values):
    s = summarize(values)
    assert s.median == pytest.approx(statistics.median(values))
    assert s.stddev == pytest.approx(statistics.stdev(values), rel=1e-6, abs=1e-6)
    assert s.min <= s.median <= s.max
    if s.ci95_median:
        assert s.ci95_median[0] <= s.median <= s.ci95_median[1]
