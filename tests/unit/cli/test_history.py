"""`appliance history` on an SQLite store: files imported once, a phase's medians over
time with the step Otava finds, the plot, and one line for what cannot be answered."""

import json

import pytest

from appliance import results
from appliance.cli import main as cli
from tests.unit.store.test_record import bench_doc


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    files = []
    for i, kernel_ms in enumerate([4000] * 6 + [4600] * 6):  # a 15% step after the sixth run set
        path = tmp_path / f"r{i}.json"
        results.write(path, bench_doc(kernel_ms + i))  # each its own document
        files.append(str(path))
    assert cli.main(["history", "import", *files, "--db", url, "--label", "v1"]) == 0
    return url, files


def test_imports_are_recorded_once_and_the_step_is_found_where_it_was(store, capsys, tmp_path):
    url, files = store
    capsys.readouterr()
    assert cli.main(["history", "import", files[0], "--db", url, "--json"]) == 0
    assert "already in the store" in json.loads(capsys.readouterr().out)["files"][0]
    assert cli.main(["history", "--db", url, "--phase", "to_init", "--json", "--svg", str(tmp_path / "t.svg")]) == 0
    rows = json.loads(capsys.readouterr().out)["run_sets"]
    assert len(rows) == 12 and {r["label"] for r in rows} == {"v1"}
    stepped = [i for i, r in enumerate(rows) if r["change"]]
    assert stepped == [6] and rows[6]["change"]["relative"] == pytest.approx(0.14, abs=0.02)
    assert (tmp_path / "t.svg").read_text().startswith("<svg")


def test_a_phase_that_is_none_or_a_filter_that_matches_nothing_is_one_line(store, capsys):
    url, _ = store
    assert cli.main(["history", "--db", url, "--phase", "boot"]) == 1
    assert "--phase 'boot' is not a phase" in capsys.readouterr().err
    assert cli.main(["history", "--db", url, "--template", "other"]) == 1
    assert "match template=other" in capsys.readouterr().err
