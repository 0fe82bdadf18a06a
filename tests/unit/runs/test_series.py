"""range's pure part: medians across a series and the steps that are real."""

from appliance.runs import series
from tests.unit.runs.test_compare import fake_run

JITTER = [0, 37, -22, 15, -41, 29]


def runs(init_ms):
    return [fake_run(i, init_ms + j, 25) for i, j in enumerate(JITTER)]


def test_only_the_step_that_changed_is_called_real():
    kernels = [("6.1.1", runs(4000)), ("6.1.2", runs(4010)), ("6.1.3", runs(3000)), ("6.1.4", runs(3005))]
    found = series.steps(kernels)
    assert [s["real"] for s in found] == [False, True, False]
    assert found[1]["ratio"] < 0.8 and (found[1]["from"], found[1]["to"]) == ("6.1.2", "6.1.3")
    text = series.table(kernels, found)
    assert "<- real step" in text.splitlines()[3] and text.count("<- real step") == 1
    assert series.medians(kernels[0][1])["kernel"] > 3900
