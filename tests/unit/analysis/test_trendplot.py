"""The history plot: a point and interval per run set, its labels, the change points marked."""

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from appliance.analysis import trendplot
from appliance.store.query import Point, RunSet
from appliance.store.trend import Change

SVG = "{http://www.w3.org/2000/svg}"


def points(medians, label=""):
    start = datetime(2026, 12, 7, 4, tzinfo=UTC)
    return [Point(RunSet(i + 1, start + timedelta(hours=i), {"label": label or f"v{i}"}, 6, True), 6,
                  m, (m - 10, m + 10), (m,)) for i, m in enumerate(medians)]


def test_each_run_set_is_a_point_with_its_interval_and_a_change_is_marked_with_its_size():
    svg = trendplot.render(points([100.0, 101, 99, 120, 121, 119]), [Change(3, 100.0, 120.0, 1e-5)], "to_init", "t <1>")
    root = ET.fromstring(svg)
    assert len(root.findall(f"{SVG}circle")) == 6
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "t <1>" in texts and "+20.0% (p=1e-05)" in texts and "v0" in texts and "v5" in texts
    assert any("run set 4 v3: 120.0 ms, n=6" in (c.findtext(f"{SVG}title") or "") for c in root.iter(f"{SVG}circle"))


def test_a_run_set_without_a_label_is_named_by_its_date_and_labels_are_thinned():
    svg = trendplot.render(points([100.0 + i for i in range(30)], label=""), [], "total", "t")
    unlabelled = points([100.0], label="")[0]
    assert trendplot._label(Point(RunSet(1, unlabelled.run_set.recorded_at, {}, 6, True), 6, 1.0, None, (1.0,))) == \
        "2026-12-07 04:00"
    axis = [t for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("transform")]
    assert 10 <= len(axis) <= 15  # at most about a dozen labels along the axis
