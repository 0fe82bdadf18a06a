"""Spans of a boot, and every output made from them: collapsed stacks, the SVG
flamechart, Chrome Trace JSON, speedscope, the timeline and the HTML report."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

from appliance.analysis import analyze, bootspans, exports, flame, initcalls, report, spans, tslog
from appliance.analysis.spans import Span
from tests.conftest import DATA

CONSOLE = (DATA / "initcall-debian-disk.console").read_text()


def run_record(index=1, kernel_extra=0.0):
    events = [("qemu_exec", 0.0), ("fw_entry", 40.0), ("kernel_entry", 43.0), ("init_start", 5150.0 + kernel_extra),
              ("init_modules_loaded", 5380.0 + kernel_extra), ("payload_start", 5410.0 + kernel_extra),
              ("payload_end", 5450.0 + kernel_extra), ("qemu_exit", 5490.0 + kernel_extra)]
    phases = {"qemu": 40.0, "firmware": 3.0, "kernel": 5107.0 + kernel_extra, "init": 260.0, "payload": 40.0,
              "to_init": 5150.0 + kernel_extra, "total": 5490.0 + kernel_extra}
    return {"index": index, "warmup": False, "ok": True, "events": [{"name": n, "t_ms": t} for n, t in events],
            "phases_ms": phases, "guest_probes": [{"name": "init_start", "boottime_ns": 1_695_015_769}],
            "guest_modules": [{"name": "ext4", "start_ns": 1_800_000_000, "duration_ns": 40_000_000}]}


def boot() -> list[Span]:
    return bootspans.boot_spans(run_record(), CONSOLE, initcalls.parse(CONSOLE).initcalls)


def test_boot_spans_nest_phases_initcalls_and_modules_on_the_host_timeline():
    items = boot()
    assert spans.problems(items) == []
    s = {x.stack: x for x in items}
    kernel = s[("boot", "kernel")]
    assert (kernel.start_us, kernel.end_us) == (43_000.0, 5_150_000.0)
    group = s[("boot", "kernel", "initcalls")]
    crypto = s[("boot", "kernel", "initcalls", "crypto_algapi_init")]
    assert group.start_us <= crypto.start_us and crypto.end_us <= group.end_us
    assert crypto.duration_us == 209707.0
    # "Run /init" is at printk 1.605... and anchors to init_start (no linux_start_user here)
    assert s[("boot", "kernel", "early boot")].end_us == pytest.approx(5_150_000.0 - bootspans.printk_anchor(CONSOLE))
    load = s[("boot", "userspace", "init", "load ext4")]
    assert load.start_us == pytest.approx(5_150_000.0 + (1_800_000_000 - 1_695_015_769) / 1000)
    assert s[("boot", "userspace", "init", "load ext4", "ext4_init_fs")].end_us == load.end_us
    # the init span is the phase table's init: init_start -> payload_start, no further
    assert (s[("boot", "userspace", "init")].start_us, s[("boot", "userspace", "init")].end_us) == (
        5_150_000.0, 5_410_000.0)
    assert s[("boot", "userspace")].end_us == 5_450_000.0  # init and payload together: "userspace"


def test_timeline_marks_the_longest_and_keeps_phases():
    rows = bootspans.timeline(boot())
    text = bootspans.render_timeline(rows)
    assert "<- longest" in text.splitlines()[[r.name for r in rows].index("early boot") + 1]
    assert {"qemu", "firmware", "kernel", "init", "payload"} <= {r.name for r in rows}


def test_collapsed_self_times_add_up_to_the_root():
    items = boot()
    total = sum(int(line.rsplit(" ", 1)[1]) for line in spans.collapsed(items))
    assert abs(total - 5_490_000) < len(items)  # rounding to whole us per stack


def test_svg_flamechart_is_well_formed_with_title_and_tooltips():
    svg = flame.render(boot(), "disk boot")
    root = ET.fromstring(svg.split("\n", 1)[1])
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "disk boot (5490.0 ms)" in texts
    tips = [t.text for t in root.iter(f"{ns}title")]
    assert any(t.startswith("crypto_algapi_init: 209.707 ms") for t in tips)


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


def test_report_is_one_self_contained_html_file():
    runs = [run_record(i) for i in range(3)]
    doc = {"format": 2, "kind": "analysis", "complete": True,
           "bundle": {"name": "disk", "path": "build/disk", "machine": "microvm"},
           "runs": runs, "analysis": analyze.summarize([(r, CONSOLE) for r in runs], runs)}
    html = report.render(doc, "x.json")
    for part in ("phases per run", "distributions", "summary", "initcall analysis", "flamechart", "crypto_algapi_init"):
        assert part in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "<script src" not in html and "https://" not in html  # the flamechart's own script is inline


def test_report_of_a_comparison_shows_its_table_and_verdicts():
    from appliance.runs import compare

    a = [run_record(i) for i in range(5)]
    b = [run_record(i, kernel_extra=-4000.0 + 10 * i) for i in range(5)]  # a much faster kernel
    side = {"complete": True, "bundle": {"name": "x", "path": "build/x", "machine": "microvm"}}
    doc = {"format": 2, "kind": "compare", "a": {**side, "runs": a},
           "b": {**side, "bundle": {**side["bundle"], "path": "build/y"}, "runs": b},
           "comparison": compare.compare(a, b, confidence=0.95)}
    html = report.render(doc, "compare.json")
    assert "comparison: B = build/y against A = build/x" in html
    assert "kernel" in html and "<li>" in html and "no phase differs" not in html


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


def test_the_initcalls_verb_reads_a_log_and_refuses_one_without_initcalls(tmp_path, capsys):
    from appliance.cli import main as cli

    log = tmp_path / "dmesg.txt"
    log.write_text(CONSOLE)
    assert cli.main(["initcalls", str(log), "--svg", str(tmp_path / "k.svg"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["analysis"]["initcalls"][0]["key"] and data["outputs"]["svg"] == str(tmp_path / "k.svg")
    (tmp_path / "plain.txt").write_text("[    0.000000] Linux version 6.1\n[    1.000000] Run /init as init process\n")
    assert cli.main(["initcalls", str(tmp_path / "plain.txt")]) == 1
    assert "no initcall_debug lines" in capsys.readouterr().err


def test_the_report_breaks_the_kernel_phase_down_from_what_the_boot_has():
    # a bench run with profiled's copy of the kernel log (a quiet console, no initcall_debug)
    plain = [line for line in CONSOLE.splitlines() if "initcall" not in line and "calling" not in line]
    kmsg = []
    for seq, line in enumerate(plain):
        m = re.match(r"^\[\s*(\d+)\.(\d+)\] (.*)$", line)
        if m:
            kmsg.append(json.dumps({"v": 1, "t": 0, "type": "kmsg", "seq": seq,
                                    "ts_us": int(m[1]) * 1_000_000 + int(m[2]), "msg": m[3]}))
    run = {**run_record(), "profiled_raw": "\n".join(kmsg) + "\n"}
    doc = {"format": 2, "kind": "analysis", "complete": True,
           "bundle": {"name": "disk", "path": "build/disk", "machine": "microvm"},
           "runs": [run]}
    html = report.render(doc, "x.json")
    assert "inside the kernel phase (5107.0 ms, run 1, the one with the median total)" in html
    assert "<h2>flamechart (run 1, the one with the median total)</h2>" in html  # the same boot, said so
    for part in ("early boot", "memory set up", "devices and drivers", "init memory freed", "to init"):
        assert f"<td class=l>{part}</td>" in html
    # the patched kernel's probes, and no log at all
    probed = run_record()
    probed["events"] += [{"name": "linux_start_kernel", "t_ms": 500.0}, {"name": "linux_start_user", "t_ms": 5000.0}]
    parts = bootspans.kernel_parts(bootspans.boot_spans(probed, "", []))
    assert [p.name for p in parts] == ["decompress and set up", "start_kernel to init", "exec init"]
    assert parts[0].duration_us == 457_000.0


def test_chrome_b_and_e_events_of_a_span_carry_the_same_args():
    noted = [Span("t", ("t", "a"), 0.0, 10.0, "function", "why it ran"), Span("t", ("t", "a", "b"), 2.0, 5.0, "function")]
    doc = exports.chrome_trace(noted)
    pairs = [e for e in doc["traceEvents"] if e["ph"] in ("B", "E")]
    assert [(e["ph"], e["name"], e.get("args")) for e in pairs] == [
        ("B", "a", {"note": "why it ran"}), ("B", "b", None), ("E", "b", None), ("E", "a", {"note": "why it ran"})]


def test_axes_have_round_ticks_and_phases_of_one_magnitude_share_one():
    assert flame.ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert flame.ticks(4210, 4480) == [4250, 4300, 4350, 4400, 4450]
    assert flame.ticks(0, 10, 10) == list(range(11))
    groups = report.scale_groups({"qemu": 40.0, "firmware": 5.0, "init": 30.0, "kernel": 4400.0, "total": 5500.0})
    assert groups == [["firmware", "init", "qemu"], ["kernel", "total"]]
    svg = report.distributions([run_record(i, kernel_extra=i * 10.0) for i in range(6)],
                               ("qemu", "firmware", "kernel", "init", "payload", "to_init", "total"))
    # firmware (3 ms) alone; qemu, payload and init (40-260 ms) together; the seconds-long ones on a third
    assert svg.count("<svg") == 3
    assert ">5500 ms</text>" in svg and ">100 ms</text>" in svg  # tick labels with their unit on each axis
    bars = report.stacked_bars([run_record(i) for i in range(3)])
    assert ">5000 ms</text>" in bars  # the per-run bars stand on a time axis with its unit


def test_an_undivided_kernel_bar_says_why_and_what_would_divide_it():
    plain = [Span("boot", ("boot",), 0.0, 5_000_000.0, "phase"), Span("boot", ("boot", "kernel"), 40_000.0,
                                                                      4_000_000.0, "phase")]
    text = report.kernel_section(plain, "run 0")
    assert "One undivided bar" in text and "appliance analyze BUNDLE" in text and "minimal kernel" in text


def test_a_compare_report_says_what_b_added_and_labels_both_sides_runs():
    a = {"runs": [run_record(i) for i in range(3)], "bundle": {"name": "m", "path": "/b/m"}, "complete": True}
    b = {"runs": [run_record(i, kernel_extra=50.0) for i in range(3)], "bundle": {"name": "m", "path": "/b/m"},
         "complete": True}
    from appliance import results
    from appliance.runs import compare
    doc = results.comparison(a, b, compare.compare(a["runs"], b["runs"]), complete=True, append_b="quiet")
    html = report.render(doc)
    assert "+ <code>quiet</code> on its command line" in html
    assert ">A run 0</text>" in html and ">B run 0</text>" in html


def test_narrow_frames_stay_in_the_flamechart_hidden_until_zoomed_and_labels_are_never_stubs():
    wide = Span("t", ("t",), 0.0, 10_000_000.0, "phase")
    tiny = [Span("t", ("t", f"crypto_init_{k}"), 1000.0 * k, 1000.0 * k + 5.0, "initcall") for k in range(50)]
    svg = flame.render([wide, *tiny], "chart")
    assert svg.count('class="f"') == 51 and svg.count('style="display:none"') == 50
    assert "50 frames narrower than 0.05 px hidden until you zoom in" in svg
    for width in (5, 20, 26, 30, 60):
        label = flame._label("crypto_algapi_init", width)
        assert label == "" or len(label) >= 4
    assert 'addEventListener("hashchange", follow)' in svg
    last_tick = re.findall(r'<text class="tick" x="([\d.]+)" y="56"( text-anchor="end")?>([\d.]+) ms</text>', svg)[-1]
    assert last_tick[2] == "10000" and last_tick[1]  # the rightmost label ends at its line, not past the edge


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


def test_report_of_a_cost_document_draws_every_source_with_its_share():
    from appliance import results
    from appliance.analysis import cost
    from tests.unit.analysis.test_cost import CONTENTS, bound, plain

    runs = [run_record(i) for i in range(3)]
    table = cost.cost(CONTENTS, [], [plain(1400)], [bound(1000)], [bound(960)]).to_dict()
    doc = results.cost({"format": 2, "kind": "bench", "complete": True,
                        "bundle": {"name": "py", "path": "build/py", "machine": "microvm"}, "runs": runs}, table)
    html = report.render(doc, "cost.json")
    assert "what each part costs at boot" in html and "debian libc6=2.36" in html
    assert "against 500.0 ms measured over the init alone" in html and "rect width=" in html


def test_every_export_of_the_debian_log_sums_to_the_boot(tmp_path, capsys):
    """Issue 39: start_kernel's self time was its whole span while its `@ 0` console
    initcalls were listed too (a zero-length "early boot" sibling hid the parent): the
    collapsed file summed to 17-25 ms more than the boot."""
    from appliance.cli import main as cli

    log = tmp_path / "dmesg.txt"
    log.write_text(CONSOLE)
    collapsed, trace, speed = tmp_path / "c.txt", tmp_path / "t.json", tmp_path / "s.json"
    assert cli.main(["initcalls", str(log), "--collapsed", str(collapsed), "--chrome", str(trace),
                     "--speedscope", str(speed), "--json"]) == 0
    boot_us = max(s["end_us"] for s in json.loads(capsys.readouterr().out)["analysis"]["spans"])
    lines = [line for line in collapsed.read_text().splitlines() if line.startswith("boot")]  # the boot's track
    assert abs(sum(int(line.rsplit(" ", 1)[1]) for line in lines) - boot_us) <= len(lines)  # whole-us rounding
    assert any(line.startswith("boot;kernel;start_kernel;con_init ") for line in lines)
    profile = json.loads(speed.read_text())["profiles"][0]
    assert profile["endValue"] - profile["startValue"] == boot_us
    events = json.loads(trace.read_text())["traceEvents"]
    root = [e for e in events if e.get("name") == "boot" and e["ph"] in "BE"]
    assert root[-1]["ts"] - root[0]["ts"] == boot_us


def test_self_times_find_parents_by_stack_past_a_zero_length_sibling():
    from appliance.analysis.spans import Span, self_times

    items = [Span("t", ("boot",), 0, 100), Span("t", ("boot", "early"), 0, 0),
             Span("t", ("boot", "start"), 0, 40), Span("t", ("boot", "start", "con_init"), 10, 30),
             Span("t", ("boot", "rest"), 40, 100)]
    got = self_times(items)
    assert got[("t", ("boot", "start"))] == 20 and got[("t", ("boot", "start", "con_init"))] == 20
    assert sum(got.values()) == 100


def test_a_boot_that_crashed_in_an_initcall_gets_its_picture_up_to_the_crash(tmp_path, capsys):
    """Issue 39: a log ending in an oops got one "kernel" bar and a made-up userspace."""
    from appliance.cli import main as cli

    lines = CONSOLE.splitlines()
    cut = [i for i, line in enumerate(lines) if "calling  " in line and "@ 1" in line][300]
    stamp = lines[cut].split("]")[0]
    log = tmp_path / "oops.txt"
    log.write_text("\n".join([*lines[:cut + 1], f"{stamp}] BUG: kernel NULL pointer dereference, address: 8"]) + "\n")
    collapsed = tmp_path / "c.txt"
    assert cli.main(["initcalls", str(log), "--collapsed", str(collapsed), "--json"]) == 0
    analysis = json.loads(capsys.readouterr().out)["analysis"]
    stacks = [tuple(s["stack"]) for s in analysis["spans"]]
    assert ("boot", "userspace") not in stacks
    assert ("boot", "kernel", "stopped") in stacks and ("boot", "kernel", "initcalls", "oom_init") in stacks
    hung = [s for s in stacks if s[-1].endswith("(never returned)")]
    assert hung == [("boot", "kernel", "initcalls", "eventpoll_init (never returned)")]
    assert analysis["unfinished"] == ["eventpoll_init"]
    assert sum(1 for line in collapsed.read_text().splitlines() if ";initcalls;" in line) > 50
    assert cli.main(["initcalls", str(log)]) == 0
    assert "STOPPED at" in capsys.readouterr().out


def test_modules_initcalls_after_init_are_drawn_on_tracks_of_their_own(tmp_path, capsys):
    """Issue 39: 3.0 s of module initcalls after "Run /init" were in the table but in no
    chart or export. Now a bar in userspace and each call on a modules track."""
    from appliance.cli import main as cli

    log = tmp_path / "dmesg.txt"
    log.write_text(CONSOLE)
    assert cli.main(["initcalls", str(log), "--json"]) == 0
    analysis = json.loads(capsys.readouterr().out)["analysis"]
    modules = [s for s in analysis["spans"] if s["track"].startswith("modules")]
    in_table = [c for c in analysis["initcalls"] if c.get("module")]
    assert in_table and len(modules) == len(in_table)
    bar = next(s for s in analysis["spans"] if s["stack"] == ["boot", "userspace", "module initcalls"])
    assert bar["start_us"] <= min(s["start_us"] for s in modules) and bar["end_us"] >= max(s["end_us"] for s in modules)
    for track in {s["track"] for s in modules}:  # calls on one track never overlap
        mine = sorted((s for s in modules if s["track"] == track), key=lambda s: s["start_us"])
        assert all(a["end_us"] <= b["start_us"] for a, b in zip(mine, mine[1:], strict=False))


def test_a_short_phase_stays_visible_in_the_per_run_bars():
    """Issue 39: a 3.6 ms firmware phase was invisible in the report's per-run bars."""
    bars = report.stacked_bars([run_record(0)])
    firmware = re.search(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"[^>]*><title>run 0 firmware: 3.0 ms', bars)
    assert firmware and float(firmware[1]) >= report.MIN_BAR_PX
    assert "drawn 2 px wide" in bars
