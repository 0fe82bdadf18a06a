"""The SVG flamechart: well formed, titled, narrow frames kept."""

import re
import xml.etree.ElementTree as ET

from appliance.analysis import flame
from appliance.analysis.spans import Span
from tests.unit.analysis.sample import boot


def test_svg_flamechart_is_well_formed_with_title_and_tooltips():
    svg = flame.render(boot(), "disk boot")
    root = ET.fromstring(svg.split("\n", 1)[1])
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "disk boot (5490.0 ms)" in texts
    tips = [t.text for t in root.iter(f"{ns}title")]
    assert any(t.startswith("crypto_algapi_init: 209.707 ms") for t in tips)


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
