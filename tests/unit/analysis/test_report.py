"""The HTML report: one self-contained file, its comparison, cost and kernel sections, its axes and bars."""

import json
import re

from appliance.analysis import analyze, bootspans, flame, report
from appliance.analysis.spans import Span
from tests.unit.analysis.sample import CONSOLE, run_record


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


def test_a_short_phase_stays_visible_in_the_per_run_bars():
    """Issue 39: a 3.6 ms firmware phase was invisible in the report's per-run bars."""
    bars = report.stacked_bars([run_record(0)])
    firmware = re.search(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"[^>]*><title>run 0 firmware: 3.0 ms', bars)
    assert firmware and float(firmware[1]) >= report.MIN_BAR_PX
    assert "drawn 2 px wide" in bars
