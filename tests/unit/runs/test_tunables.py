"""tune's pure parts: the knobs, variants, the ranking (with a knob that breaks the boot)."""

import pytest

from appliance.runs import tunables
from appliance.runs.bench import run_record
from tests.unit.runs.test_compare import fake_run
from tests.unit.test_bundle import make_bundle


@pytest.fixture
def target(tmp_path):
    from appliance import bundle

    make_bundle(tmp_path)
    return bundle.load(tmp_path)


def test_knobs_that_apply_and_none_already_on_the_command_line(target):
    names = [k.name for k in tunables.catalog(target)]
    assert "quiet" in names and "verbose console" not in names  # the test bundle's cmdline has no quiet
    assert "cryptomgr.notests" in names and "2 vCPUs + tsc.reliable" in names and "acpi=off" not in names  # microvm
    assert "machine q35-qboot" not in names  # no firmware.bin in the bundle
    quiet = target.with_run(cpus=1)
    assert quiet.manifest["cpus"] == 1
    with pytest.raises(ValueError, match="unknown or inapplicable knob"):
        tunables.select(tunables.catalog(target), ["acpi=off"])


def test_a_variant_is_the_bundle_with_its_settings_and_words(target):
    knob = tunables.select(tunables.catalog(target), ["4 vCPUs + tsc.reliable"])[0]
    variant, words = tunables.apply(target, knob)
    assert variant.manifest["cpus"] == 4 and words == "tsc.reliable" and target.manifest["cpus"] == 1
    both = tunables.combine([knob, tunables.select(tunables.catalog(target), ["cryptomgr.notests", "tsc.reliable"])[1],
                             tunables.select(tunables.catalog(target), ["2 vCPUs"])[0]])
    assert both.words == "tsc.reliable" and both.settings == {"cpus": 4}  # the first setting wins a clash


def test_ranking_calls_out_only_real_savings_and_reports_a_broken_boot():
    jitter = [0, 37, -22, 15, -41, 29, 8, -12]
    base = [fake_run(i, 4000 + j, 25) for i, j in enumerate(jitter)]
    faster = [fake_run(i, 3000 + j, 25) for i, j in enumerate(jitter)]  # a quarter less
    same = [fake_run(i, 4000 - j, 25) for i, j in enumerate(jitter)]
    broken = [run_record(i, False, None, error="kernel panic: Kernel panic - not syncing: VFS", console_tail="tail")
              for i in range(8)]
    rows = tunables.rank(base, {"same": same, "faster": faster, "broken": broken})
    assert [r["knob"] for r in rows] == ["faster", "same", "broken"]
    assert rows[0]["real"] and rows[0]["to_init"]["ratio"] < 0.8 and not rows[1]["real"]
    assert rows[2]["to_init"] is None and "kernel panic" in next(iter(rows[2]["broke"]))
    assert tunables.helpful(rows) == ["faster"]
    text = tunables.table(rows)
    assert "broke the boot: kernel panic" in text and "faster" in text.splitlines()[2]


def test_a_resumed_tune_refuses_another_hosts_results(tmp_path, target):
    from appliance import results
    from appliance.boot.accel import AccelChoice
    from appliance.errors import ApplianceError
    from appliance.runs import tune
    from appliance.runs.bench import Plan, Session

    tcg = AccelChoice("tcg", "asked for")
    sessions = {"base": Session(target, tcg, Plan()), "quiet": Session(target, tcg, Plan())}
    here = {"cpu_model": "A", "host_kernel": "6.1", "qemu_version": "7.2", "cpus": 2}
    for session in sessions.values():
        session.runs = [fake_run(i, 4000, 25) for i in range(3)]
    doc = tune.document(sessions, {**here, "cpu_model": "B"}, False, {"knobs": ["quiet"]})
    results.write(tmp_path / "t.json", doc)
    with pytest.raises(ApplianceError, match="was measured on another host .*never mix"):
        tune.resume(tmp_path / "t.json", sessions, here)
    results.write(tmp_path / "t.json", tune.document(sessions, here, False, {"knobs": ["quiet"]}))
    for session in sessions.values():
        session.runs = []
    assert tune.resume(tmp_path / "t.json", sessions, here) == 3
    assert len(sessions["quiet"].runs) == 3


def test_tune_ranks_knobs_on_the_instruction_clock_by_their_counts():
    from appliance.clocks import Unit
    from appliance.runs import tunables
    from tests.unit.runs.test_compare import fake_run

    def runs(count, n=2):
        return [{**fake_run(i, 4000, 25), "phases_insn": {"to_init": count + i, "total": count + 1e6}}
                for i in range(n)]

    rows = tunables.rank(runs(5.0e9), {"quiet": runs(4.9e9), "same": runs(5.0e9), "slower": runs(5.2e9)},
                         unit=Unit.INSTRUCTIONS)
    assert [r["knob"] for r in rows] == ["quiet", "same", "slower"]
    assert rows[0]["real"] and not rows[1]["real"] and rows[2]["real"]
    assert rows[0]["to_init"]["delta_instructions"] == pytest.approx(-1e8, rel=1e-6)
    assert tunables.helpful(rows) == ["quiet"] and "M insns" in tunables.table(rows)
