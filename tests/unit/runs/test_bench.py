"""A run record: what bench writes for each boot, a failed one with its reason."""

from appliance.runs.bench import run_record


def test_failed_runs_are_recorded_with_their_reason():
    record = run_record(3, False, None, error="guest did not finish within 5 s", console_tail="tail")
    assert record == {"index": 3, "warmup": False, "ok": False, "error": "guest did not finish within 5 s",
                      "console_tail": "tail"}
