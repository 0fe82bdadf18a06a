"""Recording results into the store (store/record.py), on SQLite in a temporary folder:
in the fast loop. The same behaviour on PostgreSQL is tests/integration/store's."""

import json

import pytest

from appliance import results
from appliance.store import db, query, record
from tests.unit.runs.test_compare import fake_run


def bench_doc(kernel_ms, n=6, name="benchmark", host="host-a"):
    runs = [fake_run(i, kernel_ms + 3 * i, 25) for i in range(n)]
    return results.run_set(host={"host_name": host, "cpu_model": "cpu", "qemu_version": "QEMU 7.2"},
                           accel={"used": "tcg", "reason": ""},
                           bundle={"path": f"build/{name}", "name": name, "digest": "d" * 64, "machine": "microvm",
                                   "cpus": 1, "memory_mib": 256, "arch": "x86_64", "kernel_release": "6.1"},
                           settings={"channel": "trace"}, runs=runs, complete=True)


@pytest.fixture
def store(tmp_path):
    return db.open_store(f"sqlite:///{tmp_path / 'results.db'}")


def test_a_document_is_recorded_once_and_kept_whole(store):
    engine, url = store
    doc = bench_doc(4000)
    first = record.record(engine, url, doc, "v1", "test")
    again = record.record(engine, url, doc, "v1", "test")
    assert first.new and not again.new and again.run_set_ids == first.run_set_ids
    sets = query.run_set_list(engine, url, {})
    stored, side = query.document_of(engine, url, sets[0].id)
    assert stored == json.loads(json.dumps(doc)) and side == ""


def test_each_side_of_a_comparison_is_its_own_run_set(store):
    engine, url = store
    done = record.record(engine, url, results.comparison(bench_doc(4000), bench_doc(4400), {"rows": []},
                                                         complete=True), "", "test")
    assert len(done.run_set_ids) == 2
    assert [s.dims["side"] for s in query.run_set_list(engine, url, {"kind": "compare"})] == ["A", "B"]


def test_every_dimension_of_the_table_has_one_reader():
    from appliance.store import schema

    assert tuple(record.READERS) == schema.DIMENSIONS
    row = record.dimensions(bench_doc(4000), "bench", "v1", "")
    assert row["template"] == "benchmark" and row["clock"] == "wall" and row["host_name"] == "host-a"
