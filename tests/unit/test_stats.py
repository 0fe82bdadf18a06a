import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.stats import (
    bootstrap_median_ci,
    median_ci,
    outliers,
    permutation_p,
    quantile,
    ratio_ci,
    sample_stddev,
    stratified_p,
    stratified_ratio,
    stratified_ratio_ci,
    summarize,
)


def test_known_values():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert (s.n, s.min, s.max, s.median, s.mean) == (10, 1.0, 10.0, 5.5, 5.5)
    assert s.stddev == pytest.approx(3.0276503540974917)  # sample (n-1), not population
    assert s.p95 == pytest.approx(9.55)
    assert s.ci95_median_order == (2.0, 9.0)  # order statistics 2 and 9 of 10: coverage 97.9%
    assert s.ci95_median == summarize([4.0, 1.0, 3.0, 2.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]).ci95_median  # seeded
    assert 1.0 <= s.ci95_median[0] < 5.5 < s.ci95_median[1] <= 10.0


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
    assert one.stddev is None and one.ci95_median is None and one.median == 3.0 and one.outliers == ()
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


def test_bootstrap_is_seeded_and_brackets_the_median():
    values = [10.0, 11.0, 12.0, 13.0, 50.0, 9.0, 11.5]
    assert bootstrap_median_ci(values, seed=1) == bootstrap_median_ci(values, seed=1)
    low, high = bootstrap_median_ci(values)
    assert low <= statistics.median(values) <= high
    assert bootstrap_median_ci([1.0, 2.0]) is None


def test_ratio_and_permutation_find_a_real_difference_and_not_a_fake_one():
    a = [100.0 + (i * 7) % 5 for i in range(12)]
    b = [x * 1.10 for x in a]
    low, high = ratio_ci(a, b)
    assert 1.05 < low <= 1.10 <= high < 1.15
    assert permutation_p(a, b) < 0.001
    same_low, same_high = ratio_ci(a, list(reversed(a)))
    assert same_low <= 1.0 <= same_high
    assert permutation_p(a, list(reversed(a))) > 0.5


def test_outliers_flagged_by_position_not_dropped():
    values = [10.0, 11.0, 10.5, 10.2, 30.0, 10.8]
    assert outliers(values) == (4,)
    s = summarize(values)
    assert s.outliers == (4,) and s.max == 30.0 and s.n == 6


def test_the_order_statistic_interval_matches_exact_binomials_and_scales():
    import math

    from appliance import stats

    def exact(values, confidence=0.95):
        n = len(values)
        cdf = [0.0]
        for k in range(n + 1):
            cdf.append(cdf[-1] + math.comb(n, k) / 2**n)
        for j in range(n // 2, -1, -1):
            if cdf[n - j] - cdf[j + 1] >= confidence:
                return values[j], values[n - 1 - j]
        return None

    for n in (1, 2, 5, 6, 7, 10, 31, 100, 257):
        values = [float(i) for i in range(n)]
        assert stats.median_ci(values) == exact(values), n
    big = [float(i) for i in range(100_000)]  # 100,000 boots of one run set: O(n), not n^3
    low, high = stats.median_ci(big)
    assert 49_600 < low < 50_000 < high < 50_400
    assert stats.bootstrap_median_ci(big) == (low, high)  # past BOOTSTRAP_MOST the same interval


def test_stratified_statistics_pool_hosts_of_different_speed():
    rng = random.Random(4)
    fast = ([100 + rng.uniform(-2, 2) for _ in range(8)], [90 + rng.uniform(-2, 2) for _ in range(8)])
    slow = ([300 + rng.uniform(-6, 6) for _ in range(8)], [270 + rng.uniform(-6, 6) for _ in range(8)])
    assert stratified_ratio([fast, slow]) == pytest.approx(0.9, abs=0.02)
    ci = stratified_ratio_ci([fast, slow])
    assert ci[1] < 1 and stratified_p([fast, slow]) < 0.001
    # the same values pooled without strata: the hosts' spread blurs the difference
    assert permutation_p(fast[0] + slow[0], fast[1] + slow[1]) > 10 * stratified_p([fast, slow])
