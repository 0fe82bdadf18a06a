"""The plot of `appliance range --svg`: a line per phase across the kernels, real steps marked."""

import xml.etree.ElementTree as ET

from appliance.analysis import seriesplot

SVG = "{http://www.w3.org/2000/svg}"


def test_a_line_per_phase_a_point_per_kernel_and_only_real_steps_marked():
    medians = [{"kernel": 900.0, "to_init": 1000.0, "total": 1100.0},
               {"kernel": 950.0, "to_init": 1050.0, "total": None},
               {"kernel": 1400.0, "to_init": 1500.0, "total": 1600.0}]
    steps = [{"real": False, "ratio": 1.05}, {"real": True, "ratio": 1.43}]
    root = ET.fromstring(seriesplot.render(["6.1", "6.2 & <rc>", "6.3"], medians, steps, "range"))
    lines = root.findall(f"{SVG}polyline")
    assert [line.get("stroke") for line in lines] == list(seriesplot.COLOURS.values())
    assert len(root.findall(f"{SVG}circle")) == 8  # total is missing for one kernel
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "6.2 & <rc>" in texts and "+43.0%" in texts and "+5.0%" not in texts
