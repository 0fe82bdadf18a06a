"""`appliance gate`'s verb: JUnit and Markdown outputs, a baseline file instead of a store, a busy
host said, one-line refusals."""

import random
import xml.etree.ElementTree as ET

from appliance.runs import gate
from tests.unit.runs.test_compare import fake_run


def runs(n, kernel_ms, spread, seed):
    rng = random.Random(seed)
    return [fake_run(i, kernel_ms + rng.gauss(0, spread), 25) for i in range(n)]


def test_the_junit_and_markdown_outputs_carry_the_verdict():
    from appliance.cli import gate as cli_gate

    about = {"run_set": 7, "label": "main", "template": "benchmark"}
    failed = gate.decide(runs(10, 4000, 40, 1), runs(10, 4600, 40, 2), "to_init")
    root = ET.fromstring(cli_gate.junit(failed, about, ""))
    suite = root.find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1" and suite.get("skipped") == "0"
    assert suite.find("testcase/failure").get("message").startswith("regression: to_init")
    passed = gate.decide(runs(10, 4000, 20, 1), runs(10, 4000, 20, 2), "to_init")
    assert ET.fromstring(cli_gate.junit(passed, about, "")).find("testsuite/testcase/failure") is None
    text = cli_gate.markdown(failed, about, "CROSS-HOST: host_name 'a' vs 'b'")
    assert "❌ regression" in text and "| to_init |" in text and "**Warning: CROSS-HOST" in text


def test_a_gate_against_a_baseline_file_needs_no_store(tmp_path, capsys):
    from appliance import results
    from appliance.cli import main as cli

    def write(name, kernel_ms):
        path = tmp_path / f"{name}.json"
        results.write(path, results.run_set(host={}, accel={"used": "tcg", "reason": ""},
                                            bundle={"path": "b", "name": "b"}, settings={},
                                            runs=runs(10, kernel_ms, 20, hash(name) % 100), complete=True))
        return str(path)

    # an unreachable store must not matter when the baseline is a file
    code = cli.main(["gate", write("cand", 4600), "--baseline-file", write("base", 4000),
                     "--db", "postgresql://nobody@127.0.0.1:1/x"])
    assert code == 1 and "gate: FAIL: regression" in capsys.readouterr().out


def test_a_gate_says_when_boots_ran_on_a_busy_host(tmp_path, capsys):
    """Issue 36: 24 of 24 candidate boots flagged disturbed, not a word in the gate's text,
    JUnit or Markdown."""
    from appliance import results
    from appliance.cli import main as cli

    def write(name, kernel_ms, busy):
        path = tmp_path / f"{name}.json"
        boots = [{**r, "host_load": {"disturbed": busy}} for r in runs(10, kernel_ms, 20, 3)]
        results.write(path, results.run_set(host={}, accel={"used": "tcg", "reason": ""},
                                            bundle={"path": "b", "name": "b"}, settings={}, runs=boots, complete=True))
        return str(path)

    junit, md = tmp_path / "g.xml", tmp_path / "g.md"
    code = cli.main(["gate", write("cand", 4000, True), "--baseline-file", write("base", 4000, False),
                     "--junit", str(junit), "--markdown", str(md)])
    out = capsys.readouterr()
    assert code == 0 and "BUSY HOST: 10 of 10 candidate boots ran while the host was busy" in out.out
    assert "BUSY HOST" in junit.read_text() and "BUSY HOST" in md.read_text() and "BUSY HOST" in out.err


def test_a_gate_says_which_side_and_an_incomplete_candidate_and_refuses_a_folder_report(tmp_path, capsys):
    from appliance import results
    from appliance.cli import main as cli

    side = results.run_set(host={}, accel={"used": "tcg", "reason": ""}, bundle={"path": "b", "name": "b"},
                           settings={}, runs=runs(10, 4000, 20, 3), complete=False)
    base = tmp_path / "base.json"
    results.write(base, {**side, "complete": True})
    cmp = tmp_path / "cmp.json"
    results.write(cmp, results.comparison(side, side, {"rows": []}, complete=False))
    assert cli.main(["gate", str(cmp), "--baseline-file", str(base)]) == 0
    out = capsys.readouterr().out
    assert "the candidate is the compare document's run set 'A'" in out and "INCOMPLETE" in out
    assert cli.main(["gate", str(cmp), "--baseline-file", str(base), "--junit", str(tmp_path)]) == 2
    assert "give a file in an existing folder" in capsys.readouterr().err
