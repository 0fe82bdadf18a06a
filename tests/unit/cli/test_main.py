"""The command line: every verb's help, --json from the one printer, clear failures."""

import json

import pytest

from appliance.cli import main as cli
from tests.unit.runs.test_compare import fake_run


def verbs():
    return cli.parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


@pytest.mark.parametrize("verb", sorted(verbs()))
def test_every_verb_has_help_and_json_except_build(verb, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([verb, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: appliance " + verb)
    assert ("--json" in text) == (verb not in cli.NO_JSON)


def results_file(tmp_path, runs):
    from appliance import results

    path = tmp_path / "r.json"
    doc = results.run_set(host={}, accel={"used": "tcg", "reason": ""}, bundle={"path": "b", "name": "b"},
                           settings={}, runs=runs, complete=True)
    results.write(path, doc)
    return path, doc


def test_stats_json_carries_what_the_table_shows(tmp_path, capsys):
    path, doc = results_file(tmp_path, [fake_run(i, 4000 + 10 * i, 25) for i in range(6)])
    assert cli.main(["stats", str(path)]) == 0
    table = capsys.readouterr().out
    assert cli.main(["stats", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summaries"]["runs"] == json.loads(json.dumps(doc["summary"]))
    median = data["summaries"]["runs"]["phases"]["kernel"]["median"]
    assert f"{median:.1f}" in table


def test_json_output_is_one_document_even_for_several_outputs(tmp_path, capsys):
    path, _ = results_file(tmp_path, [fake_run(i, 4000, 25) for i in range(3)])
    assert cli.main(["export", str(path), "--format", "collapsed", "-o", str(tmp_path / "c.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"outputs": {"collapsed": str(tmp_path / "c.txt")}}


@pytest.mark.parametrize("argv, message", [
    (["stats", "{missing}"], "cannot read results"),
    (["bench", "{bundle}", "-o", "{tmp}"], "is a directory"),
    (["bench", "{bundle}", "-o", "{tmp}/no/such/dir/r.json"], "does not exist"),
])
def test_bad_outputs_and_inputs_are_one_line_before_any_boot(tmp_path, capsys, argv, message):
    from tests.unit.test_bundle import make_bundle

    make_bundle(tmp_path)
    words = [w.format(missing=tmp_path / "nope.json", bundle=tmp_path, tmp=tmp_path) for w in argv]
    assert cli.main([*words, "--accel", "tcg"] if words[0] == "bench" else words) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


@pytest.mark.parametrize("verb", sorted(verbs()))
def test_every_positional_argument_says_what_it_accepts(verb):
    positionals = [a for a in verbs()[verb]._actions if not a.option_strings and a.dest != "help"]
    for action in positionals:
        assert action.help, f"{verb} {action.dest} has no help"
        if action.dest in ("bundle", "artifact"):
            assert ".tar.zst" in action.help and ".iso" in action.help and "directory" in action.help
        if action.dest == "results":
            assert "results JSON" in action.help


def test_exports_are_named_as_their_tools_expect_by_default(tmp_path, capsys):
    path, _ = results_file(tmp_path, [fake_run(i, 4000, 25) for i in range(3)])
    for fmt, name in (("chrome", "r.trace.json"), ("speedscope", "r.speedscope.json"), ("collapsed", "r.folded"),
                      ("svg", "r.svg")):
        assert cli.main(["export", str(path), "--format", fmt]) == 0
        assert (tmp_path / name).is_file(), fmt
    assert "r.trace.json" in capsys.readouterr().out


def test_an_interrupted_parse_only_verb_does_not_claim_it_stopped_qemu(monkeypatch, capsys, tmp_path):
    from appliance.cli import analysis_verbs

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis_verbs, "cmd_tslog", interrupted)
    (tmp_path / "d").write_text("0x1 1 ENTER main\n")
    assert cli.main(["tslog", str(tmp_path / "d"), "--tsc-hz", "1e9"]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted: tslog stopped before it wrote anything"


def test_stats_recomputes_the_phases_from_the_raw_events(tmp_path, capsys):
    from appliance import results

    runs = [fake_run(i, 4000 + 10 * i, 25) for i in range(6)]
    tampered = [{**r, "phases_ms": {**r["phases_ms"], "kernel": 1.0}} for r in runs]  # stored phases that lie
    path = tmp_path / "r.json"
    results.write(path, results.run_set(host={}, accel={"used": "tcg", "reason": ""}, bundle={"path": "b", "name": "b"},
                                        settings={}, runs=tampered, complete=True))
    assert cli.main(["stats", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    kernel = json.loads(captured.out)["summaries"]["runs"]["phases"]["kernel"]
    assert kernel["median"] > 3000  # from the events (kernel entry -> init_start), not the stored 1.0
    assert "6 run(s) stored phases that differ from their events" in captured.err


def test_an_absurd_boot_count_needs_yes_and_a_long_run_says_how_long(tmp_path, capsys):
    from appliance.runs import bench

    assert cli.main(["bench", str(tmp_path), "-n", "1000000000", "-o", str(tmp_path / "r.json")]) == 1
    assert "asks for 1000000001 boots per side" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
    bench.tty_progress(1, 100_000, 4.2)  # stderr is no terminal here: one estimate line
    assert "estimate: 100000 boots at 4.2 s each: about 5 days more" in capsys.readouterr().err


def test_build_dir_follows_the_environment_as_scons_does(monkeypatch, tmp_path):
    from appliance.paths import ROOT

    monkeypatch.delenv("BUILD_DIR", raising=False)
    assert cli.build_dir() == ROOT / "build"
    monkeypatch.setenv("BUILD_DIR", str(tmp_path))
    assert cli.build_dir() == tmp_path
    monkeypatch.setenv("BUILD_DIR", "elsewhere")
    assert cli.build_dir() == ROOT / "elsewhere"
