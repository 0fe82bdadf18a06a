"""Reading results files: damaged or foreign ones are one clear error, never a traceback."""

import json

import pytest

from appliance import results
from appliance.errors import ApplianceError


def write(tmp_path, doc):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("doc, message", [
    ({"format": 1}, "has no list of runs"),
    ({"format": 1, "runs": [{"ok": True, "warmup": False, "index": 0}]}, "run 0 succeeded but has no events or phases_ms"),
    ({"format": 1, "runs": [{"ok": True, "warmup": False, "index": 0, "events": [{"t_ms": 1}], "phases_ms": {}}]},
     "run 0 has an event without a name"),
    # issue 36: hostile imports that got through or ended in tracebacks
    ({"format": 1, "runs": [{"ok": True, "warmup": False}]}, "run 0 has no integer index"),
    ({"format": 1, "runs": [{"ok": False, "warmup": False, "index": 1}, {"ok": False, "warmup": False, "index": 1}]},
     "run 1 repeats index 1"),
    ({"format": 1, "runs": [{"ok": True, "warmup": False, "index": 0, "events": [], "phases_ms": {"kernel": "4"}}]},
     "phases_ms kernel is '4': not a finite duration"),
    ({"format": 1, "runs": [{"ok": True, "warmup": False, "index": 0, "events": [], "phases_ms": {"kernel": -4}}]},
     "phases_ms kernel is -4"),
    ({"format": 1, "bundle": "b", "runs": []}, "its bundle is str 'b', not an object"),
    ({"format": 1, "host": {"host_name": {"x": 1}}, "runs": []}, "its host's host_name is dict, not text"),
    ({"format": 1, "bundle": {"cpus": "many"}, "runs": []}, "its bundle's cpus is 'many', not a whole number"),
    ({"format": 1, "runs": ["x"]}, "run 0 is not a run record"),
    ({"format": 1, "comparison": {}, "a": {"runs": []}}, "has no list of runs"),
    ({"format": 3, "runs": []}, "is not a results file of format 2"),
    ({"format": 2, "kind": "bench"}, "has no list of runs"),
    ({"format": 2, "kind": "bisect?", "runs": []}, "of unknown kind 'bisect\\?'"),
    ({"format": 2, "runs": []}, "of unknown kind None"),
])
def test_damaged_results_are_refused_with_what_is_wrong(tmp_path, doc, message):
    with pytest.raises(ApplianceError, match=message):
        results.read(write(tmp_path, doc))


def test_binary_input_is_refused(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ApplianceError, match="cannot read results"):
        results.read(path)


def test_a_failed_run_needs_no_events(tmp_path):
    doc = {"format": 1, "runs": [{"ok": False, "warmup": False, "index": 0, "error": "hang"}]}
    assert results.read(write(tmp_path, doc))["runs"][0]["error"] == "hang"


def test_every_kind_of_results_file_has_its_run_sets_named(tmp_path, capsys):
    from appliance.cli import main as cli
    from tests.unit.runs.test_compare import fake_run

    side = {"runs": [fake_run(i, 4000 + i, 25) for i in range(3)], "bundle": {"path": "b", "name": "b"}, "complete": True}
    kinds = {"tune": {"tune": {"rows": []}, "base": side, "variants": {"tsc.reliable": side}},
             "series": {"series": [{**side, "kernel": "/k1", "name": "6.1.1"}, {**side, "kernel": "/k2", "name": "6.1.2"}]},
             "channels": {"channels": {"trace": side, "exit": side}, "crosscheck": {}}}
    labels = {"tune": ["base", "tsc.reliable"], "series": ["6.1.1", "6.1.2"], "channels": ["trace", "exit"]}
    for kind, doc in kinds.items():
        path = write(tmp_path, {"format": 1, "complete": True, **doc})
        assert list(results.labelled_sides(results.read(path))) == labels[kind]
        assert cli.main(["stats", str(path)]) == 0, kind  # stats reads every kind
        assert cli.main(["report", str(path), "-o", str(tmp_path / f"{kind}.html")]) == 0, kind
    assert "6.1.2" in capsys.readouterr().out


def test_each_kind_is_built_by_its_constructor_and_read_back_by_its_kind(tmp_path):
    from tests.unit.runs.test_compare import fake_run

    side = results.run_set(host={}, accel={"used": "tcg", "reason": ""}, bundle={"path": "b", "name": "b"},
                           settings={}, runs=[fake_run(i, 4000 + i, 25) for i in range(3)], complete=True)
    docs = [side,
            results.comparison(side, side, {"rows": []}, complete=True, append_b="quiet"),
            results.crosscheck({"trace": side, "exit": side}, {}, complete=False),
            results.tune(side, {"quiet": side}, {"rows": []}, complete=True),
            results.series([{**side, "kernel": "/k", "name": "k"}], "kernel", complete=True),
            results.analysis(side, {"initcalls": []})]
    assert [d["kind"] for d in docs] == list(results.KINDS)[:6]  # (bisect: tests/unit/runs/test_bisect.py)
    for doc in docs:
        path = tmp_path / f"{doc['kind']}.json"
        results.write(path, doc)
        again = results.read(path)
        assert again["kind"] == doc["kind"] and len(results.sides(again)) == len(results.sides(doc))
    # a document a constructor did not build is refused when written, not read back as a guess
    with pytest.raises(ValueError, match="not a results document"):
        results.write(tmp_path / "x.json", {"format": results.FORMAT, "runs": []})


def test_a_format_1_file_is_read_as_the_kind_its_keys_told():
    doc = results._migrate_v1({"format": 1, "comparison": {}, "a": {"runs": []}, "b": {"runs": []}})
    assert (doc["format"], doc["kind"], doc["a"]["kind"]) == (2, "compare", "bench")
    assert results._migrate_v1({"format": 1, "runs": [], "analysis": {}})["kind"] == "analysis"
    assert results._migrate_v1({"format": 1, "runs": []})["kind"] == "bench"


def test_nan_and_deep_nesting_are_one_line(tmp_path):
    from appliance import results
    from appliance.errors import ApplianceError

    nan = tmp_path / "nan.json"
    nan.write_text('{"format": 2, "kind": "bench", "runs": [], "x": NaN}')
    with pytest.raises(ApplianceError, match="NaN is not a number a results file holds"):
        results.read(nan)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ApplianceError, match="nested too deeply"):
        results.read(deep)


def test_stored_phases_agree_with_their_events_at_epoch_times():
    """Issue 36: `stats` said runs "stored phases that differ from their events" on every
    fresh results file: phases were derived from epoch milliseconds (1.7e12: a float
    keeps 0.2 us of it) and the events from times since QEMU's exec."""
    from appliance.boot.measure import BootRun
    from appliance.phases import derive
    from appliance.probes import Event
    from appliance.runs.bench import run_record

    t0 = 1_796_000_000_123_456_789
    events = [Event(name, t0 + offset, "trace") for name, offset in (
        ("qemu_exec", 0), ("fw_entry", 53_426_546), ("kernel_entry", 56_026_546), ("init_start", 7_593_720_546),
        ("payload_start", 7_622_208_546), ("payload_end", 7_664_318_546), ("qemu_exit", 7_712_905_599))]
    run = BootRun(events, derive(events), [], 1000, 0)
    doc = results.run_set(host={}, accel={"used": "tcg", "reason": ""}, bundle={}, settings={},
                          runs=[run_record(0, False, run)], complete=True)
    _, differed = results.recomputed(doc)
    assert differed == 0


def test_every_key_a_run_record_is_written_with_is_declared_by_its_type():
    """The typed contract holds what the runner writes: a run with every optional part
    (slot, instruction counts, forwards, profiled's log, a restore) has no key that
    RunRecord does not declare, and its instruction phases are whole numbers."""
    from typing import get_type_hints

    from appliance.boot.measure import BootRun
    from appliance.phases import derive
    from appliance.probes import Event
    from appliance.runs.bench import Slot, run_record

    events = [Event(name, t, "trace") for name, t in (
        ("qemu_exec", 0), ("fw_entry", 5_000_000), ("kernel_entry", 6_000_000), ("init_start", 900_000_000),
        ("payload_start", 910_000_000), ("payload_end", 920_000_000), ("qemu_exit", 930_000_000))]
    counts = {"qemu_exec": 0, "fw_entry": 10, "kernel_entry": 20, "init_start": 5000, "payload_start": 5100,
              "payload_end": 5300, "qemu_exit": 5400}
    run = BootRun(events, derive(events), [("init", 123)], 1000, 0, forwards=["tcp:127.0.0.1:40000-:22"],
                  restored=True, instructions=counts, vcpu_instructions=[5400], guest_log='{"type": "end"}\n')
    record = run_record(4, False, run, overhead_ms=1.0, slot=Slot(2, 1))
    declared = set(get_type_hints(results.RunRecord))
    assert set(record) <= declared, set(record) - declared
    assert record["round"] == 2 and record["slot"] == 1
    insn = record["phases_insn"]
    assert insn["to_init"] == 5000 and all(v is None or type(v) is int for v in insn.values())
    assert results.phases_of(record, results.Unit.INSTRUCTIONS)["to_init"] == 5000.0
    assert results.phase_values([record, {"index": 5, "warmup": False, "ok": False}], "to_init") == [
        record["phases_ms"]["to_init"]]
    failed = run_record(5, False, None, error="guest hung", console_tail="tail")
    assert set(failed) <= declared and failed["error"] == "guest hung"


def test_failed_boots_are_those_not_ok_warm_ups_included():
    from appliance.results import failed, failure_reasons
    from appliance.runs.bench import run_record
    from tests.unit.runs.test_compare import fake_run

    broken = [run_record(i, i == 0, None, error=f"guest did not finish within 5 s\nconsole: {i}") for i in range(2)]
    runs = [*broken, fake_run(2, 4000, 20)]
    assert failed(runs) == broken
    assert failure_reasons(runs) == {"guest did not finish within 5 s": 2}
