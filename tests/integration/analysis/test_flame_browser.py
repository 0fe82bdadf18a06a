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
    prof = tslog.profile((DATA / "tslog-handmade.txt").read_text(), 1e9)
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
    prof = tslog.profile((DATA / "tslog-handmade.txt").read_text(), 1e9)
    covered, end = 0.0, float("-inf")
    for s in sorted((s for s in prof.spans if re.match("^(ahci|vm_mem)", s.name)), key=lambda s: s.start_us):
        if s.end_us > end:
            covered, end = covered + s.end_us - max(s.start_us, end), s.end_us
    shown = sum(1 for s in prof.spans if re.match("^(ahci|vm_mem)", s.name))
    assert status(root) == f"matched {shown} frames, {100 * covered / prof.total_us:.1f}% of the time"
