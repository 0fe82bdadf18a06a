"""The regression gate's rule: fail only on evidence and a change above the threshold,
pass when the interval clears the threshold, otherwise say how many boots would decide."""

import random

from appliance.runs import gate
from tests.unit.runs.test_compare import fake_run


def runs(n, kernel_ms, spread, seed):
    rng = random.Random(seed)
    return [fake_run(i, kernel_ms + rng.gauss(0, spread), 25) for i in range(n)]


def test_a_deliberate_slowdown_fails():
    decision = gate.decide(runs(10, 4000, 40, 1), runs(10, 4600, 40, 2), "to_init")
    assert decision.verdict == gate.FAIL and "regression" in decision.reason
    assert 1.12 < decision.ratio < 1.18 and decision.ci[0] > 1


def test_an_a_a_gate_passes():
    decision = gate.decide(runs(10, 4000, 20, 1), runs(10, 4000, 20, 2), "to_init")
    assert decision.verdict == gate.PASS and decision.ci[1] <= 1.05


def test_a_real_slowdown_below_the_threshold_passes():
    decision = gate.decide(runs(12, 4000, 5, 1), runs(12, 4080, 5, 2), "to_init")  # +2%, with --threshold 0.05
    assert decision.verdict == gate.PASS and decision.ratio > 1.01


def test_too_few_or_too_noisy_boots_are_inconclusive_with_the_boots_that_would_decide():
    few = gate.decide(runs(2, 4000, 20, 1), runs(10, 4000, 20, 2), "to_init")
    assert few.verdict == gate.INCONCLUSIVE and few.boots_needed == gate.MIN_BOOTS
    noisy = gate.decide(runs(4, 4000, 400, 1), runs(4, 4100, 400, 2), "to_init")
    assert noisy.verdict == gate.INCONCLUSIVE and noisy.boots_needed > 4


def counted_runs(n, to_init, spread, seed):
    """Runs with instruction-clock phases: to_init COUNT with a relative SPREAD."""
    rng = random.Random(seed)
    out = []
    for run in runs(n, 4000, 40, seed):
        count = to_init * (1 + rng.uniform(-spread, spread))
        out.append({**run, "phases_insn": {"to_init": count, "payload": 6e6}})
    return out


def test_instruction_counts_decide_on_three_boots_a_side():
    from appliance.clocks import Unit

    same = gate.decide(counted_runs(3, 5.937e9, 0.0002, 1), counted_runs(3, 5.937e9, 0.0002, 2), "to_init",
                       unit=Unit.INSTRUCTIONS)
    assert same.verdict == gate.PASS and same.unit == "instructions" and same.threshold == gate.COUNT_THRESHOLD
    assert same.p_value is None and "M instructions" in same.reason
    slower = gate.decide(counted_runs(3, 5.937e9, 0.0002, 1), counted_runs(3, 5.937e9 * 1.01, 0.0002, 2), "to_init",
                         unit=Unit.INSTRUCTIONS)
    assert slower.verdict == gate.FAIL and "instruction clock" in slower.reason and slower.ci[0] > 1
    # counts that spread as wide as the threshold (a short boot on `instructions`: timer
    # interrupts follow wall time) cannot pass: use --clock virtual
    noisy = gate.decide(counted_runs(3, 45e6, 0.014, 1), counted_runs(3, 45e6, 0.014, 2), "to_init",
                        unit=Unit.INSTRUCTIONS)
    assert noisy.verdict == gate.INCONCLUSIVE
    one = gate.decide(counted_runs(1, 5.937e9, 0, 1), counted_runs(3, 5.937e9, 0, 2), "to_init",
                      unit=Unit.INSTRUCTIONS)
    assert one.verdict == gate.INCONCLUSIVE and "at least 2 good boots" in one.reason
