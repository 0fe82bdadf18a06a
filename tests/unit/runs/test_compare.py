"""Summaries of run sets, A/B comparison with its sequential rule, and channel cross-checks."""

import random

import pytest

from appliance.boot.measure import BootRun
from appliance.phases import derive
from appliance.probes import Event
from appliance.results import summary
from appliance.runs import compare as compare_module
from appliance.runs.bench import run_record
from appliance.runs.compare import compare, crosscheck, decided, looks_for, verdict
from appliance.stats import holm

MS = 1_000_000


def fake_run(index, init_ms, payload_ms, warmup=False, drop=()):
    marks = {"qemu_exec": 0.0, "fw_entry": 30.0, "kernel_entry": 40.0, "init_start": init_ms,
             "payload_start": init_ms + 6, "payload_end": init_ms + 6 + payload_ms, "qemu_exit": init_ms + 100}
    events = [Event(n, int(t * MS), "trace") for n, t in marks.items() if n not in drop]
    run = BootRun(events, derive(events), [], 200_000, 0, qemu_lifetime_ms=init_ms + 100)
    return run_record(index, warmup, run, overhead_ms=12.0)


def test_summary_counts_only_good_counted_runs_and_reports_missing_probes_honestly():
    runs = [fake_run(0, 9999, 99, warmup=True)] + [fake_run(i, 4500 + i, 25) for i in range(1, 7)]
    runs.append(fake_run(7, 4510, 25, drop=("init_start",)))
    runs.append(run_record(8, False, None, error="guest did not finish within 5 s", console_tail="tail"))
    s = summary(runs)
    assert s["phases"]["kernel"]["n"] == 6  # the run without init_start gives no kernel phase
    assert s["phases"]["payload"]["n"] == 7
    assert s["probes"]["init_start"]["median"] == 4503.5
    # payload_start's median also counts run 7 (which lost init_start): 4510 - 4503.5
    assert s["phases_from_probe_medians"]["init"] == 6.5
    assert s["runner_overhead_ms"]["median"] == 12.0


def test_compare_finds_the_slower_side_and_not_itself():
    a = [fake_run(i, 4000 + 10 * (i % 3), 25) for i in range(8)]
    b = [fake_run(i, 4400 + 10 * (i % 3), 25) for i in range(8)]
    result = compare(a, b)
    rows = {r["phase"]: r for r in result["rows"]}
    assert rows["to_init"]["role"] == "primary" and rows["to_init"]["level"] == 0.95
    assert rows["kernel"]["ratio"] > 1.09 and rows["kernel"]["verdict"].startswith("B is 10.")
    assert "slower in kernel" in rows["kernel"]["verdict"]
    assert rows["payload"]["verdict"] is None
    assert all(r["verdict"] is None for r in compare(a, a)["rows"])


def test_holm_steps_down_and_stops_at_the_first_failure():
    thresholds = holm([0.001, 0.04, 0.011, 0.3], 0.05)
    # sorted: 0.001 at 0.05/4, 0.011 at 0.05/3, 0.04 at 0.05/2 (fails: stop), 0.3 untested
    assert thresholds == [0.0125, 0.025, 0.05 / 3, 0.0]
    assert holm([0.2, 0.001], 0.05) == [0.05, 0.025]  # the second test stops: 0.2 > 0.05


def test_six_boots_a_side_decide_a_clear_difference_in_the_primary_phase():
    # The smallest permutation p at 6 + 6 is 2/924 = 0.0022: plain Bonferroni over ~8
    # phases (0.05/8 = 0.006) leaves almost no room; the primary at 0.05 has plenty.
    jitter = [0, 37, -22, 15, -41, 29]
    a = [fake_run(i, 4000 + j, 25) for i, j in enumerate(jitter)]
    b = [fake_run(i, 4200 + j, 25) for i, j in enumerate(jitter)]
    rows = {r["phase"]: r for r in compare(a, b)["rows"]}
    assert rows["to_init"]["p_value"] < 0.01 and "slower in to_init" in rows["to_init"]["verdict"]


def test_other_phases_are_tested_only_when_the_primary_differs():
    a = [fake_run(i, 4000 + 10 * (i % 3), 25) for i in range(8)]
    b = [fake_run(i, 4000 + 10 * (i % 3), 90) for i in range(8)]  # only the payload differs
    gated = {r["phase"]: r for r in compare(a, b)["rows"]}
    assert gated["to_init"]["verdict"] is None
    assert gated["payload"]["verdict"] is None and gated["payload"]["level"] is None
    asked = {r["phase"]: r for r in compare(a, b, primary="payload")["rows"]}
    assert asked["payload"]["role"] == "primary" and "slower in payload" in asked["payload"]["verdict"]


def test_a_sequential_comparison_spends_alpha_over_its_looks_and_stops_when_decided():
    assert looks_for(6, 24) == [6, 12, 18, 24] and looks_for(6, 20) == [6, 12, 18, 20] and looks_for(6, 6) == [6]
    a = [fake_run(i, 4000 + 10 * (i % 3), 25) for i in range(8)]
    b = [fake_run(i, 4400 + 10 * (i % 3), 25) for i in range(8)]
    result = compare(a, b, looks=4)
    assert abs(result["alpha"] - 0.0125) < 1e-12
    assert decided(result) == "to_init differs"
    same = compare(a, a, looks=4)
    assert decided(same).startswith("to_init is within 2% (interval 0.99")  # identical sides: no need to boot on
    noisy_b = [fake_run(i, 4000 + 300 * (i % 3), 25) for i in range(8)]
    assert decided(compare(a, noisy_b, looks=4)) is None  # wide interval, no verdict: boot on


def test_verdict_wording():
    assert verdict("kernel", 0.88, (0.85, 0.91)) == "B is 12.0% faster in kernel, CI 9.0-15.0%"
    assert verdict("kernel", 1.0, (0.95, 1.04)) is None


def test_crosscheck_reports_differences_against_the_reference():
    trace = summary([fake_run(i, 4500, 25) for i in range(5)])
    exit_ = summary([fake_run(i, 4503, 25) for i in range(5)])
    check = crosscheck({"trace": trace, "exit": exit_})
    assert check["probes"]["init_start"]["exit_minus_trace"] == 3.0
    # the exit channel's phases mix boots: not differenced, and the table says why
    assert "exit" not in check["phases"]["payload"] and "exit_minus_trace" not in check["phases"]["payload"]
    from appliance.runs.compare import crosscheck_table
    assert "note: exit: the exit channel times each probe in a boot of its own" in crosscheck_table(check)
    serial = summary([fake_run(i, 4501, 26) for i in range(5)])
    both = crosscheck({"trace": trace, "serial": serial})
    assert both["phases"]["payload"]["serial_minus_trace"] == 1.0 and both["notes"] == []


def test_a_count_interval_holds_every_observed_ratio_and_the_floor():
    lo, hi = compare_module.count_interval([100.0, 101.0], [110.0, 111.0], floor=0.001)
    assert lo == pytest.approx(110 / 101 * 0.999) and hi == pytest.approx(111 / 100 * 1.001)
    same = compare_module.count_interval([5e9] * 3, [5e9] * 3)
    assert same == pytest.approx((1 - compare_module.COUNT_FLOOR, 1 + compare_module.COUNT_FLOOR))


def test_counts_are_compared_in_instructions_with_a_verdict_where_the_range_excludes_one():
    from appliance.clocks import Unit

    a = [{**fake_run(i, 4000, 25), "phases_insn": {"to_init": 5.0e9 + i, "payload": 6e6}} for i in range(3)]
    b = [{**fake_run(i, 4000, 25), "phases_insn": {"to_init": 5.1e9 + i, "payload": 6e6}} for i in range(3)]
    result = compare(a, b, unit=Unit.INSTRUCTIONS)
    rows = {r["phase"]: r for r in result["rows"]}
    assert result["unit"] == "instructions" and result["primary"] == "to_init"
    assert "slower in to_init" in rows["to_init"]["verdict"] and rows["payload"]["verdict"] is None
    assert "M insns" in compare_module.comparison_table(result)


def _runs(host, values):
    return [{"ok": True, "warmup": False, "worker": {"host_name": host}, "phases_ms": {"to_init": v}} for v in values]


def test_compare_blocks_by_host_and_flags_hosts_that_disagree():
    rng = random.Random(9)
    a = _runs("h1", [100 + rng.uniform(-1, 1) for _ in range(8)]) + _runs("h2", [200 + rng.uniform(-2, 2) for _ in range(8)])
    b = _runs("h1", [80 + rng.uniform(-1, 1) for _ in range(8)]) + _runs("h2", [240 + rng.uniform(-2, 2) for _ in range(8)])
    result = compare_module.compare(a, b)
    assert [h["host"] for h in result["hosts"]] == ["h1", "h2"]
    assert result["hosts"][0]["ci"][1] < 1 < result["hosts"][1]["ci"][0]
    assert result["hosts_disagree"] and "blocked by host" in result["method"]
    assert "the hosts disagree" in compare_module.comparison_table(result)
    one_host = compare_module.compare(_runs("h1", [100.0, 101, 99, 100]), _runs("h1", [100.0, 99, 101, 100]))
    assert "hosts" not in one_host
