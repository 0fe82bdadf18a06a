"""Reading the store back (store/query.py) on SQLite: run sets by their dimensions, and a
phase's medians with their intervals."""

import pytest

from appliance.store import db, query, record
from tests.unit.store.test_record import bench_doc


def test_run_sets_filter_by_dimension_and_give_each_phases_median(tmp_path):
    engine, url = db.open_store(f"sqlite:///{tmp_path / 'results.db'}")
    record.record(engine, url, bench_doc(4000), "main", "test")
    record.record(engine, url, bench_doc(5000, name="other", host="host-b"), "pr", "test")
    mine = query.run_set_list(engine, url, {"template": "benchmark"})
    assert [(s.dims["label"], s.boots) for s in mine] == [("main", 6)]
    assert [s.dims["label"] for s in query.run_set_list(engine, url, {"host_name": "host-b"})] == ["pr"]
    point = query.points(engine, url, mine, "to_init")[0]
    assert point.n == 6 and point.median == pytest.approx(4007.5) and point.ci is not None
    assert query.run_set_list(engine, url, {"template": "nothing"}) == []
