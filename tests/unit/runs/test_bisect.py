"""bisect's classification of a midpoint: by which side of the step's halfway point it
lies, so that two builds of one source a few percent apart are not taken for the step."""

import random

from appliance.runs import bisect
from tests.unit.runs.test_compare import fake_run


def runs(n, payload_ms, spread, seed):
    rng = random.Random(seed)
    return [fake_run(i, 4000, payload_ms + rng.gauss(0, spread)) for i in range(n)]


def test_a_midpoint_is_placed_by_the_halfway_point_of_the_step():
    good, bad = runs(9, 22, 1.5, 1), runs(9, 180, 6, 2)
    # 20% off the good end (seen for real between two builds of one source): still good
    assert bisect.classify(good, runs(9, 27, 1.5, 3), bad, phase="payload", confidence=0.95, looks=3)[0] == bisect.GOOD
    assert bisect.classify(good, runs(9, 175, 6, 4), bad, phase="payload", confidence=0.95, looks=3)[0] == bisect.BAD
    verdict, reason = bisect.classify(good, runs(9, 63, 30, 5), bad, phase="payload", confidence=0.95, looks=3)  # near 63 ms
    assert verdict == bisect.UNDECIDED and "halfway" in reason


def test_ends_that_do_not_differ_leave_nothing_to_bisect():
    same = runs(6, 22, 1.5, 1)
    verdict, reason = bisect.classify(same, runs(6, 22, 1.5, 2), runs(6, 22, 1.5, 3), phase="payload", confidence=0.95, looks=1)
    assert verdict == bisect.UNDECIDED and "do not differ" in reason


def test_a_speed_up_is_bisected_the_same_way():
    good, bad = runs(9, 180, 6, 1), runs(9, 22, 1.5, 2)
    assert bisect.classify(good, runs(9, 25, 1.5, 3), bad, phase="payload", confidence=0.95, looks=3)[0] == bisect.BAD
    assert bisect.classify(good, runs(9, 170, 6, 4), bad, phase="payload", confidence=0.95, looks=3)[0] == bisect.GOOD
