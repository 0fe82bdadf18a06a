"""Arm order in interleaved runs: randomized, balanced, recorded, and tested for an effect."""

import random
from collections import Counter

from appliance.runs import bench, compare


def test_each_arm_boots_first_equally_often_per_cycle():
    orders = bench.round_orders(3, 30, random.Random(1))
    assert len(orders) == 30 and all(sorted(o) == [0, 1, 2] for o in orders)
    for cycle in range(0, 30, 3):
        firsts = Counter(o[0] for o in orders[cycle:cycle + 3])
        assert firsts == {0: 1, 1: 1, 2: 1}
    # not one fixed rotation: the order really changes between cycles
    assert len({tuple(o) for o in orders}) > 3


def test_two_arms_alternate_who_goes_first():
    orders = bench.round_orders(2, 10, random.Random(7))
    assert Counter(o[0] for o in orders) == {0: 5, 1: 5}


def test_a_seed_repeats_the_order_and_none_varies_it():
    assert bench.round_orders(4, 8, random.Random(3)) == bench.round_orders(4, 8, random.Random(3))
    assert len({tuple(map(tuple, bench.round_orders(4, 8, random.Random()))) for _ in range(5)}) > 1


class FakeSession:
    plan = bench.Plan()

    def __init__(self, name, log):
        self.name, self.log, self.slots = name, log, []

    def boot(self, warmup, slot=None):
        self.log.append(self.name)
        self.slots.append((warmup, slot))


def test_interleave_boots_in_the_randomized_order_and_passes_each_slot():
    log: list[str] = []
    sessions = [FakeSession("a", log), FakeSession("b", log)]
    ran = bench.interleave(sessions, 1, 4, progress=None, seed=5)
    assert ran == 4 and len(log) == 10
    rng = random.Random(5)
    orders = bench.round_orders(2, 1, rng) + bench.round_orders(2, 4, rng)
    assert log == [["a", "b"][arm] for order in orders for arm in order]
    for session in sessions:
        assert [s.round for _, s in session.slots] == [0, 1, 2, 3, 4]
        assert [w for w, _ in session.slots] == [True, False, False, False, False]
    # the counted rounds are balanced by themselves: each arm first in two of the four
    for session in sessions:
        assert sum(s.position == 0 for w, s in session.slots if not w) == 2


def _runs(values_by_slot):
    return [{"ok": True, "warmup": False, "slot": slot, "phases_ms": {"to_init": v}} for slot, v in values_by_slot]


def test_order_effect_finds_a_first_boot_penalty_across_arms_of_different_speed():
    rng = random.Random(0)
    a = _runs([(i % 2, (100 if i % 2 else 130) + rng.uniform(-2, 2)) for i in range(16)])
    b = _runs([((i + 1) % 2, (200 if (i + 1) % 2 else 260) + rng.uniform(-4, 4)) for i in range(16)])
    effect = compare.order_effect([a, b])
    assert effect["flagged"] and 1.25 < effect["first_over_rest"] < 1.35
    assert "% slower in to_init" in compare.order_line(effect)


def test_no_order_effect_when_position_does_not_matter():
    rng = random.Random(2)
    a = _runs([(i % 2, 100 + rng.uniform(-3, 3)) for i in range(16)])
    b = _runs([((i + 1) % 2, 200 + rng.uniform(-6, 6)) for i in range(16)])
    effect = compare.order_effect([a, b])
    assert not effect["flagged"] and compare.order_line(effect) is None


def test_order_effect_needs_recorded_slots():
    old = [{"ok": True, "warmup": False, "phases_ms": {"to_init": 1.0}}] * 8
    assert compare.order_effect([old, old]) is None


def test_a_resumed_bench_continues_its_own_file_and_refuses_others(tmp_path):
    import pytest

    from appliance import results
    from appliance.errors import ApplianceError

    class Bundle:
        digest = "d1"

    class S:
        def __init__(self):
            self.bundle, self.plan, self.runs = Bundle(), bench.Plan(), []

    side = {"bundle": {"digest": "d1", "name": "t"}, "host": {"cpu_model": "A"}, "settings": {"exit_probes": None},
            "runs": [{"index": i, "warmup": i == 0, "ok": True} for i in range(3)]}
    session = S()
    assert bench.resume([session], [side], tmp_path / "r.json", {"cpu_model": "A"}) == 3
    assert len(session.runs) == 3 and session.fleet == {}
    with pytest.raises(ApplianceError, match="another host"):
        bench.resume([S()], [side], tmp_path / "r.json", {"cpu_model": "B"})
    # boots that ran on a cluster name their workers: they may be continued from anywhere
    assert bench.resume([S()], [{**side, "fleet": {"cluster": "local:2"}}], tmp_path / "r.json", {"cpu_model": "B"}) == 3
    with pytest.raises(ApplianceError, match="another build"):
        bench.resume([S()], [{**side, "bundle": {"digest": "d2", "name": "t"}}], tmp_path / "r.json", {})
    with pytest.raises(ApplianceError, match="does not exist"):
        bench.saved_doc(tmp_path / "none.json", "bench")
    results.write(tmp_path / "done.json", results.run_set(host={}, accel={}, bundle={}, settings={}, runs=[],
                                                          complete=True))
    with pytest.raises(ApplianceError, match="is complete"):
        bench.saved_doc(tmp_path / "done.json", "bench")


def test_the_n_a_verdict_needs_is_said_and_below_it_no_verdict_is_claimed():
    from appliance.stats import boots_needed, smallest_p

    assert smallest_p(3, 3) == 0.1 and smallest_p(4, 4) == 2 / 70
    assert boots_needed(0.05) == 4 and boots_needed(0.05 / 15) == 6
    assert compare.reach_note(3, 0.05).startswith("note: with 3 boots a side no verdict is possible")
    assert "-n 4 can" in compare.reach_note(3, 0.05) and compare.reach_note(4, 0.05) is None
    a = [{"ok": True, "warmup": False, "phases_ms": {"to_init": 100.0 + i}} for i in range(3)]
    b = [{"ok": True, "warmup": False, "phases_ms": {"to_init": 50.0 + i}} for i in range(3)]
    result = compare.compare(a, b)
    assert result["reach"]["possible"] is False and result["reach"]["boots_needed"] == 4
    assert all(r["verdict"] is None for r in result["rows"])
    assert "no verdict was possible: with 3 boots a side" in compare.comparison_table(result)
