"""Change points of a phase's history, found by Apache Otava: a real step is found where
it is, with its means and p-value; a flat or short series has none."""

import random

import pytest

from appliance.store.trend import MIN_POINTS, Change, change_points


def test_a_step_of_a_tenth_is_found_where_it_happened_with_its_means():
    rng = random.Random(7)
    series = [1000 + rng.gauss(0, 5) for _ in range(20)] + [1100 + rng.gauss(0, 5) for _ in range(20)]
    changes = change_points(series)
    assert [c.index for c in changes] == [20]
    step = changes[0]
    assert step.before == pytest.approx(1000, abs=5) and step.after == pytest.approx(1100, abs=5)
    assert step.relative == pytest.approx(0.1, abs=0.01) and step.pvalue < 0.001


def test_noise_alone_and_a_short_series_have_no_change_points():
    rng = random.Random(3)
    assert change_points([1000 + rng.gauss(0, 5) for _ in range(40)]) == []
    assert change_points([1.0, 1.0, 9.0, 9.0, 9.0][:MIN_POINTS - 1]) == []


def test_a_change_from_nothing_has_no_relative_size():
    assert Change(3, 0.0, 5.0, 0.0001).relative != Change(3, 0.0, 5.0, 0.0001).relative  # NaN
