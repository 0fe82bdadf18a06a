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
    ({"format": 1, "runs": [{"ok": True, "warmup": False}]}, "run 0 succeeded but has no events or phases_ms"),
    ({"format": 1, "runs": [{"ok": True, "warmup": False, "events": [{"t_ms": 1}], "phases_ms": {}}]},
     "run 0 has an event without name"),
    ({"format": 1, "runs": ["x"]}, "run 0 is not a run record"),
    ({"format": 1, "comparison": {}, "a": {"runs": []}}, "has no list of runs"),
    ({"format": 2, "runs": []}, "is not a results file of format 1"),
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
    doc = {"format": 1, "runs": [{"ok": False, "warmup": False, "error": "hang"}]}
    assert results.read(write(tmp_path, doc))["runs"][0]["error"] == "hang"
