"""Chrome Trace JSON and speedscope: balanced events in order, and the checks that catch broken ones."""

import json

from appliance.analysis import exports, tslog
from appliance.analysis.spans import Span
from tests.conftest import DATA
from tests.unit.analysis.sample import boot


def test_chrome_trace_is_json_with_balanced_events():
    doc = json.loads(json.dumps(exports.chrome_trace(boot() + tslog.timeline(
        (DATA / "tslog-handmade.txt").read_text(), 1e9).spans)))
    assert exports.check_chrome_trace(doc) == []
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert {"boot", "kernel", "intr_config_hooks", "usbus0"} <= names
    b = sum(e["ph"] == "B" for e in doc["traceEvents"])
    assert b == sum(e["ph"] == "E" for e in doc["traceEvents"]) > 400


def test_checks_catch_broken_exports():
    doc = exports.chrome_trace(boot())
    ends = [e for e in doc["traceEvents"] if e["ph"] == "E"]
    doc["traceEvents"].remove(ends[0])
    assert exports.check_chrome_trace(doc)
    ss = exports.speedscope(boot())
    ss["profiles"][0]["events"].reverse()
    assert exports.check_speedscope(ss)


def test_speedscope_events_open_and_close_in_order():
    doc = exports.speedscope(boot() + tslog.timeline((DATA / "tslog-handmade.txt").read_text(), 1e9).spans)
    assert doc["$schema"] == exports.SPEEDSCOPE_SCHEMA
    assert exports.check_speedscope(doc) == []
    assert [p["name"] for p in doc["profiles"]][:1] == ["boot"]


def test_chrome_b_and_e_events_of_a_span_carry_the_same_args():
    noted = [Span("t", ("t", "a"), 0.0, 10.0, "function", "why it ran"), Span("t", ("t", "a", "b"), 2.0, 5.0, "function")]
    doc = exports.chrome_trace(noted)
    pairs = [e for e in doc["traceEvents"] if e["ph"] in ("B", "E")]
    assert [(e["ph"], e["name"], e.get("args")) for e in pairs] == [
        ("B", "a", {"note": "why it ran"}), ("B", "b", None), ("E", "b", None), ("E", "a", {"note": "why it ran"})]
