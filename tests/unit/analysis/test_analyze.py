"""analyze's summary: the initcall tables, the distortion, the same tables from a log file, payload probes."""

import pytest

from appliance.analysis import analyze, bootspans, exports, report
from tests.unit.analysis.sample import CONSOLE, run_record


def test_analysis_summary_and_distortion():
    debug = [(run_record(1, 700.0), CONSOLE), (run_record(2, 720.0), CONSOLE)]
    plain = [run_record(3), run_record(4)]
    analysis = analyze.summarize(debug, plain)
    d = analysis["distortion"]
    assert d["extra_ms"] == pytest.approx(710.0) and d["console_chars"] == len(CONSOLE)
    assert "710 ms" in d["warning"]
    assert analysis["initcalls"][0]["key"] == "crypto_algapi_init"
    assert [t["name"] for t in analysis["top"][:2]] == ["init", "crypto_algapi_init"]  # 260 ms phase, 210 ms
    text = analyze.render(analysis)
    assert "timeline of one boot" in text and "warning: the verbose console" in text
    alone = analyze.summarize(debug, None)["distortion"]
    assert alone["extra_ms"] is None and "unknown" in alone["warning"]


def test_a_log_from_a_file_gives_analyzes_tables_for_the_same_log(tmp_path):
    booted = analyze.summarize([(run_record(1), CONSOLE)], [run_record(2)])
    from_file = analyze.summarize_logs([CONSOLE])

    def table(analysis):  # the share depends on the kernel phase each knows, not on the log
        return [(c["key"], c["module"], c["n"], c["mean_us"], c["median_us"], c["failed"]) for c in analysis["initcalls"]]

    assert table(from_file) == table(booted) and len(table(booted)) > 100
    assert [t["name"] for t in from_file["top"] if t["kind"] == "initcall"][:10] == \
        [t["name"] for t in booted["top"] if t["kind"] == "initcall"][:10]
    assert from_file["initcalls_total_ms"] == booted["initcalls_total_ms"]
    names = [s["stack"][-1] for s in from_file["spans"] if s["kind"] == "initcall"]
    assert "crypto_algapi_init" in names and from_file["distortion"]["warning"] is None


def test_a_payload_probe_shows_in_the_table_the_report_the_spans_and_the_chrome_export():
    from appliance import results
    from appliance.runs import table

    runs = []
    for i in range(4):
        run = run_record(i)
        run["events"].insert(5, {"name": "db_ready", "t_ms": 5430.0 + i})
        runs.append(run)
    summary = results.summary(runs)
    assert "db_ready" in results.payload_probes(summary) and "init_start" not in results.payload_probes(summary)
    assert "  db_ready             median 5431.5" in table.phase_table(summary)
    doc = results.run_set(host={}, accel={"used": "tcg"}, bundle={"name": "b", "path": "/b"}, settings={}, runs=runs,
                          complete=True)
    assert "<td class=l>db_ready</td>" in report.render(doc)
    items = bootspans.boot_spans(runs[0], "", [])
    probe = next(s for s in items if s.name == "db_ready")
    assert probe.stack == ("boot", "userspace", "payload", "db_ready") and probe.start_us == 5_430_000.0
    chrome = exports.chrome_trace(items)
    assert any(e["ph"] == "i" and e["name"] == "db_ready" for e in chrome["traceEvents"])
