"""The flamechart's zoom and search, run by a real browser (headless Chromium)."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from appliance.analysis import flame, tslog
from tests.conftest import DATA

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def chart(tmp_path_factory):
    prof = tslog.timeline((DATA / "tslog-handmade.txt").read_text(), 1e9)
    path = tmp_path_factory.mktemp("flame") / "chart.svg"
    path.write_text(flame.render(prof.spans, "handmade boot", prof.total_us))
    return path


def dom(chart, fragment: str) -> ET.Element:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: run ./setup"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           chart.as_uri() + "#" + fragment], capture_output=True, text=True, timeout=120, check=True)
    return ET.fromstring(done.stdout[done.stdout.index("<svg"):])


def frames(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class", "").split()[:1] == ["f"]]


def status(root: ET.Element) -> str:
    return next(t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "status")


def test_a_click_zooms_the_time_axis_to_the_frame(chart):
    before = frames(ET.parse(chart).getroot())
    index = next(i for i, g in enumerate(before) if g.get("data-n") == "vm_mem_init")
    assert float(before[index].find(f"{SVG}rect").get("width")) < 400  # narrow before the click
    root = dom(chart, f"zoom={index}")
    after = frames(root)
    rect = after[index].find(f"{SVG}rect")
    assert float(rect.get("x")) == pytest.approx(flame.LEFT, abs=0.5)
    assert float(rect.get("width")) == pytest.approx(flame.WIDTH - 2 * flame.LEFT, abs=0.5)
    outside = next(g for g in after if g.get("data-n") == "hammer_time")
    assert "display: none" in outside.get("style", "")  # before the zoomed window
    start, end = float(before[index].get("data-s")) / 1000, float(before[index].get("data-e")) / 1000
    assert status(root) == f"zoomed to {start:.3f}-{end:.3f} ms"


def test_a_search_highlights_matches_and_gives_their_share(chart):
    root = dom(chart, "search=^(ahci|vm_mem)")
    hits = {g.get("data-n") for g in frames(root) if "hit" in g.get("class", "").split()}
    assert hits == {"ahci_attach", "vm_mem_init"}
    assert not any("hit" in g.get("class", "") for g in frames(root) if g.get("data-n") == "hammer_time")
    # the share is the union of the matched frames' time (ahci_attach is drawn twice: on its
    # thread and under the wait it held up), computed here from the spans themselves
    prof = tslog.timeline((DATA / "tslog-handmade.txt").read_text(), 1e9)
    covered, end = 0.0, float("-inf")
    for s in sorted((s for s in prof.spans if re.match("^(ahci|vm_mem)", s.name)), key=lambda s: s.start_us):
        if s.end_us > end:
            covered, end = covered + s.end_us - max(s.start_us, end), s.end_us
    shown = sum(1 for s in prof.spans if re.match("^(ahci|vm_mem)", s.name))
    assert status(root) == f"matched {shown} frames, {100 * covered / prof.total_us:.1f}% of the time"


# What a browser lays out: every visible label inside its frame and inside the picture,
# axes with tick labels, in the report and in both flamecharts (a distro kernel's
# initcalls, a tslog dump). A script in the page measures with getBBox after layout and
# writes what it found into the DOM that Chromium dumps; a screenshot is taken too.
MEASURE = """<script>
window.addEventListener("load", function () {
  var found = [];
  document.querySelectorAll("svg").forEach(function (svg, n) {
    var width = svg.viewBox.baseVal && svg.viewBox.baseVal.width ? svg.viewBox.baseVal.width : svg.width.baseVal.value;
    svg.querySelectorAll("text").forEach(function (t) {
      if (!t.textContent || t.getClientRects().length === 0) return;
      var box = t.getBBox();
      if (box.x < -0.5 || box.x + box.width > width + 0.5) found.push("svg " + n + " clips " + t.textContent);
      var g = t.parentNode;
      if (g.getAttribute && (g.getAttribute("class") || "").split(" ")[0] === "f" &&
          (t.getAttribute("class") || "").indexOf("outside") < 0) {  // a name beside its frame is meant to be
        var r = g.querySelector("rect").getBBox();
        if (box.x + box.width > r.x + r.width + 1) found.push("label past its frame: " + t.textContent);
      }
    });
  });
  document.body.setAttribute("data-clipped", JSON.stringify(found));
  document.body.setAttribute("data-ticks", String(document.querySelectorAll("text.tick, svg text[text-anchor]").length));
});
</script>"""


def rendered(tmp_path, name: str, html: str, fragment: str = "") -> tuple[list[str], int]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: run ./setup"
    page = tmp_path / f"{name}.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>") if "</body>" in html else
                    f"<!DOCTYPE html><html><body>{html}{MEASURE}</body></html>")
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1300,2000"]
    shot = tmp_path / f"{name}.png"
    uri = page.as_uri() + (f"#{fragment}" if fragment else "")
    subprocess.run([*common, f"--screenshot={shot}", uri], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000  # a picture with something in it
    done = subprocess.run([*common, "--dump-dom", uri], capture_output=True, text=True, timeout=120, check=True)
    import json

    body = re.search(r'<body[^>]*data-clipped="([^"]*)"[^>]*data-ticks="(\d+)"', done.stdout)
    assert body, done.stdout[:500]
    return json.loads(body[1].replace("&quot;", '"')), int(body[2])


def _boot_run():
    events = [("qemu_exec", 0.0), ("fw_entry", 40.0), ("kernel_entry", 43.0), ("init_start", 5150.0),
              ("payload_start", 5410.0), ("payload_end", 5450.0), ("qemu_exit", 5490.0)]
    return {"index": 0, "warmup": False, "ok": True, "events": [{"name": n, "t_ms": t} for n, t in events],
            "phases_ms": {"qemu": 40.0, "firmware": 3.0, "kernel": 5107.0, "init": 260.0, "payload": 40.0,
                          "to_init": 5150.0, "total": 5490.0},
            "guest_probes": [{"name": "init_start", "boottime_ns": 1_695_015_769}], "guest_modules": []}


def test_initcall_and_tslog_flamecharts_render_with_axes_and_no_clipped_label(tmp_path):
    from appliance.analysis import bootspans, initcalls

    console = (DATA / "initcall-debian-disk.console").read_text()
    spans = bootspans.boot_spans(_boot_run(), console, initcalls.parse(console).initcalls)
    chart = flame.render(spans, "debian boot").split("\n", 1)[1]
    clipped, ticks = rendered(tmp_path, "initcalls", chart)
    assert clipped == [] and ticks >= 5
    # zoomed to the initcall stage, the initcalls get labels that fit their frames
    group = [m.group(1) for m in re.finditer(r'<g class="f"[^>]*data-n="([^"]*)"', chart)].index("initcalls")
    clipped, _ = rendered(tmp_path, "zoomed", chart, f"zoom={group}")
    assert clipped == []
    prof = tslog.timeline((DATA / "tslog-handmade.txt").read_text(), 1e9)
    clipped, ticks = rendered(tmp_path, "tslog", flame.render(prof.spans, "handmade", prof.total_us).split("\n", 1)[1])
    assert clipped == [] and ticks >= 5


def test_the_report_renders_its_axes_without_clipping(tmp_path):
    from appliance import results
    from appliance.analysis import report

    runs = []
    for i in range(6):
        run = _boot_run()
        run["index"] = i
        run["phases_ms"] = {k: v * (1 + i / 100) for k, v in run["phases_ms"].items()}
        runs.append(run)
    doc = results.run_set(host={"cpu_model": "x"}, accel={"used": "tcg"}, bundle={"name": "b", "path": "/b"},
                          settings={}, runs=runs, complete=True)
    clipped, ticks = rendered(tmp_path, "report", report.render(doc))
    assert clipped == [] and ticks >= 10


def test_a_zoomed_chart_keeps_an_axis_with_its_unit_and_labels_use_the_room(chart):
    """Issue 39: zooming removed the time axis, the hidden-frames note stayed, and labels
    were cut to a few letters where the frame had room."""
    before = frames(ET.parse(chart).getroot())
    index = next(i for i, g in enumerate(before) if g.get("data-n") == "vm_mem_init")
    start, end = float(before[index].get("data-s")) / 1000, float(before[index].get("data-e")) / 1000
    root = dom(chart, f"zoom={index}")
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert len(ticks) >= 3 and all(t.endswith(" ms") for t in ticks)
    values = [float(t.split()[0]) for t in ticks]
    assert start - 1e-6 <= values[0] and values[-1] <= end + 1e-6  # the zoomed window's own times
    note = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "note")
    assert "hidden here" not in (note.text or "")  # nothing is too narrow inside one frame's window
    zoomed = next(g for g in frames(root) if g.get("data-n") == "vm_mem_init")
    assert zoomed.find(f"{SVG}text").text == "vm_mem_init"  # the whole name where it fits


def test_a_long_name_gets_as_much_of_itself_as_its_frame_holds(tmp_path):
    from appliance.analysis.spans import Span

    name = "a_rather_long_initcall_function_name_init"
    spans = [Span("boot", ("boot",), 0, 1000), Span("boot", ("boot", name), 0, 230, "initcall"),
             Span("boot", ("boot", "rest"), 230, 1000)]
    path = tmp_path / "chart.svg"
    path.write_text(flame.render(spans, "labels"))
    root = dom(path, "")
    text = next(g for g in frames(root) if g.get("data-n") == name).find(f"{SVG}text").text
    assert text.endswith("..") and name.startswith(text[:-2]) and len(text) >= 30  # 270 px: ~40 characters


def test_a_narrow_phase_is_named_beside_its_frame_where_the_row_has_room(tmp_path):
    """Issue 39: the report's init and payload were unlabelled slivers."""
    from appliance.analysis.spans import Span

    spans = [Span("boot", ("boot",), 0, 5490), Span("boot", ("boot", "kernel"), 43, 5150, "phase"),
             Span("boot", ("boot", "userspace"), 5150, 5490, "phase"),
             Span("boot", ("boot", "userspace", "init"), 5150, 5170, "phase"),
             Span("boot", ("boot", "userspace", "to payload"), 5170, 5410, "phase"),
             Span("boot", ("boot", "userspace", "payload"), 5410, 5450, "payload")]
    path = tmp_path / "chart.svg"
    path.write_text(flame.render(spans, "slivers"))
    root = dom(path, "")
    texts = {g.get("data-n"): g.find(f"{SVG}text") for g in frames(root)}
    for name in ("init", "payload"):
        assert texts[name].text == name and "outside" in texts[name].get("class", ""), name
    clipped, _ = rendered(tmp_path, "slivers", path.read_text().split("\n", 1)[1])
    assert clipped == []


def test_the_trend_plot_keeps_its_first_and_last_labels_inside(tmp_path):
    """The first run set's slanted date label ran off the plot's left edge."""
    from datetime import UTC, datetime

    from appliance.analysis import trendplot
    from appliance.store.query import Point, RunSet

    points = [Point(RunSet(i, datetime(2026, 12, 7, 4 + i, 46, tzinfo=UTC), {"label": ""}, 6, True), 6,
                    3800.0 + 50 * i, (3780.0 + 50 * i, 3820.0 + 50 * i), (3800.0,)) for i in range(3)]
    clipped, _ = rendered(tmp_path, "trend", trendplot.render(points, [], "to_init", "benchmark: to_init"))
    assert clipped == []
