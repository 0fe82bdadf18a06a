"""`appliance tune`'s verb before it boots: the knobs that apply, a name that is none,
too few boots, and a kconfig source without initcalls."""

import json

from appliance import results
from appliance.cli import main as cli
from tests.unit.store.test_record import bench_doc
from tests.unit.test_bundle import make_bundle


def test_list_names_the_knobs_that_apply_and_boots_nothing(tmp_path, capsys):
    make_bundle(tmp_path)
    assert cli.main(["tune", str(tmp_path), "--list", "--json"]) == 0
    knobs = json.loads(capsys.readouterr().out)["knobs"]
    assert {"quiet", "2 vCPUs", "128 MiB", "machine pc-seabios"} <= set(knobs)
    assert "machine virt" not in knobs and "machine microvm" not in knobs  # not its own machine, nor another arch's


def test_unknown_knobs_too_few_boots_and_an_analysis_without_initcalls_are_one_line(tmp_path, capsys):
    make_bundle(tmp_path)
    assert cli.main(["tune", str(tmp_path), "--knobs", "no-such-knob", "--accel", "tcg"]) == 1
    assert "no-such-knob" in capsys.readouterr().err
    assert cli.main(["tune", str(tmp_path), "-n", "2", "--accel", "tcg"]) == 1
    assert "tune needs -n of at least 3 boots per variant on the wall clock" in capsys.readouterr().err
    empty = tmp_path / "analysis.json"
    results.write(empty, results.analysis(bench_doc(4000), {"initcalls": []}))
    assert cli.main(["tune", str(tmp_path), "--kconfig-from", str(empty)]) == 1
    assert "has no initcall analysis: run `appliance analyze BUNDLE -o FILE` first" in capsys.readouterr().err
