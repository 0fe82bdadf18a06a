"""The results store for real: SQLite and a private PostgreSQL server started for the
module, the same schema and answers from both; recording, import without duplicates,
two writers at once, and the broken stores a user meets, each one line."""

import json
import subprocess
import sys
import threading

import pytest
from sqlalchemy import text

from appliance import results
from appliance.store import db, query, record
from tests.conftest import ROOT
from tests.postgres import server
from tests.unit.store.test_record import bench_doc


@pytest.fixture(scope="module")
def postgres_url():
    with server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    url = request.getfixturevalue("postgres_url")
    engine, _ = db.open_store(url)
    with engine.begin() as connection:  # each test starts from an empty store
        connection.execute(text("DELETE FROM phases; DELETE FROM run_sets; DELETE FROM documents"))
    return url


def test_a_run_set_is_recorded_once_with_a_row_per_boot_and_phase(store_url):
    engine, url = db.open_store(store_url)
    doc = bench_doc(4000)
    first = record.record(engine, url, doc, "v1", "test")
    again = record.record(engine, url, doc, "v1", "test")
    assert first.new and not again.new and again.run_set_ids == first.run_set_ids
    sets = query.run_set_list(engine, url, {"template": "benchmark"})
    assert [s.dims["label"] for s in sets] == ["v1"] and sets[0].boots == 6
    point = query.points(engine, url, sets, "to_init")[0]
    assert point.n == 6 and point.median == pytest.approx(4007.5) and point.ci is not None
    stored, side = query.document_of(engine, url, sets[0].id)
    assert stored == json.loads(json.dumps(doc)) and side == ""  # the whole document, unchanged


def test_every_side_of_a_compare_is_a_run_set(store_url):
    engine, url = db.open_store(store_url)
    a, b = bench_doc(4000), bench_doc(4400)
    done = record.record(engine, url, results.comparison(a, b, {"rows": []}, complete=True), "", "test")
    sets = query.run_set_list(engine, url, {"kind": "compare"})
    assert len(done.run_set_ids) == 2 and [s.dims["side"] for s in sets] == ["A", "B"]


def test_two_writers_at_once_are_both_kept(store_url):
    engine, url = db.open_store(store_url)
    docs = [bench_doc(4000 + i) for i in range(8)]
    errors = []

    def write(doc):
        try:
            record.record(*db.open_store(store_url), doc, "", "thread")
        except Exception as exc:  # noqa: BLE001 - the test reports whatever a writer hit
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(d,)) for d in docs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(query.run_set_list(engine, url, {})) == 8


def test_history_finds_the_step_in_a_phase(store_url, tmp_path):
    engine, url = db.open_store(store_url)
    for night in range(16):
        record.record(engine, url, bench_doc(4000 if night < 8 else 4600, n=5) | {"night": night}, f"n{night:02}", "t")
    done = subprocess.run([sys.executable, "-m", "appliance", "history", "--db", store_url, "--template", "benchmark",
                           "--json", "--svg", str(tmp_path / "t.svg")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["run_sets"]
    assert [r["label"] for r in rows] == [f"n{i:02}" for i in range(16)]
    steps = [r for r in rows if r["change"]]
    assert [s["label"] for s in steps] == ["n08"] and 0.14 < steps[0]["change"]["relative"] < 0.16
    assert "<svg" in (tmp_path / "t.svg").read_text()


def test_a_gate_fails_a_slowdown_and_passes_an_a_a_change(store_url, tmp_path):
    engine, url = db.open_store(store_url)
    record.record(engine, url, bench_doc(4000, n=10), "main", "t")

    def gate(kernel_ms, name):
        path = tmp_path / f"{name}.json"
        results.write(path, bench_doc(kernel_ms, n=10) | {"candidate": name})
        return subprocess.run([sys.executable, "-m", "appliance", "gate", str(path), "--db", store_url, "--baseline",
                               "main", "--junit", str(tmp_path / f"{name}.xml")], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    slow = gate(4600, "slow")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert "gate: FAIL: regression: to_init" in slow.stdout
    import xml.etree.ElementTree as ET

    assert ET.parse(tmp_path / "slow.xml").getroot().find("testsuite").get("failures") == "1"
    same = gate(4000, "same")
    assert same.returncode == 0, same.stdout + same.stderr
    assert ET.parse(tmp_path / "same.xml").getroot().find("testsuite").get("failures") == "0"


def test_a_gate_with_no_baseline_or_another_hosts_says_what_to_do(store_url, tmp_path):
    path = tmp_path / "c.json"
    results.write(path, bench_doc(4000))
    done = subprocess.run([sys.executable, "-m", "appliance", "gate", str(path), "--db", store_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no baseline in" in done.stderr and "record one first" in done.stderr
    engine, url = db.open_store(store_url)
    record.record(engine, url, bench_doc(4000, host="host-b"), "main", "t")
    done = subprocess.run([sys.executable, "-m", "appliance", "gate", str(path), "--db", store_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "the baseline was measured elsewhere (host_name 'host-b' vs 'host-a')" in done.stderr
    done = subprocess.run([sys.executable, "-m", "appliance", "gate", str(path), "--db", store_url, "--cross-host"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "CROSS-HOST" in done.stdout


def test_an_import_of_files_written_before_is_not_duplicated(store_url, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"r{i}.json")
        results.write(paths[-1], bench_doc(4000 + 10 * i))
    argv = [sys.executable, "-m", "appliance", "history", "import", *map(str, paths), "--db", store_url]
    first = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert first.stdout.count("recorded as run set") == 3 and again.stdout.count("already in the store") == 3
    engine, url = db.open_store(store_url)
    assert len(query.run_set_list(engine, url, {})) == 3


def test_a_store_of_a_newer_schema_is_refused(store_url):
    engine, url = db.open_store(store_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(db.StoreError, match="has schema revision '9999', which this tool does not know"):
        db.open_store(store_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE alembic_version SET version_num = '{db.head()}'"))


def test_broken_stores_are_one_line(tmp_path, postgres_url):
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(db.StoreError, match="is damaged .*move it aside"):
        db.open_store(f"sqlite:///{corrupt}")
    with pytest.raises(db.StoreError, match="cannot reach the results store postgresql://appliance@127.0.0.1:1/x"):
        db.open_store("postgresql://appliance@127.0.0.1:1/x")
    wrong_user = postgres_url.replace("appliance@", "nobody@")
    with pytest.raises(db.StoreError, match="refused the credentials"):
        db.open_store(wrong_user)
    with pytest.raises(db.StoreError, match="is not a database URL"):
        db.open_store("nonsense")
    done = subprocess.run([sys.executable, "-m", "appliance", "history", "--db", "postgresql://u:secret@127.0.0.1:1/x"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 2 and "secret" not in done.stderr  # no password shown
    assert "password in --db is visible to every user" in lines[0] and lines[1].startswith("error: cannot reach")


def test_stores_that_cannot_be_are_one_line(tmp_path, postgres_url):
    import os
    import sqlite3

    for url, message in ((f"sqlite:///{tmp_path}", "is a directory"),
                         ("sqlite://", "in-memory database"),
                         ("sqlite:///:memory:", "in-memory database"),
                         ("mysql://u@127.0.0.1/x", "SQLite or PostgreSQL only, not mysql"),
                         ("postgresql://u@127.0.0.1:port/x", "not a database URL"),
                         (postgres_url.rsplit("/", 1)[0] + "/nosuchdb", "has no database 'nosuchdb'.*createdb")):
        with pytest.raises(db.StoreError, match=message):
            db.open_store(url)
    locked = tmp_path / "ro"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere: the check is for everyone else
            with pytest.raises(db.StoreError, match="not writable"):
                db.open_store(f"sqlite:///{locked / 'results.db'}")
    finally:
        os.chmod(locked, 0o700)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:  # another program's database
        connection.execute("CREATE TABLE documents (id INTEGER)")
    with pytest.raises(db.StoreError, match="holds tables .* but no schema version"):
        db.open_store(f"sqlite:///{other}")
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('a1b2c3')")
    with pytest.raises(db.StoreError, match="another program's database"):
        db.open_store(f"sqlite:///{other}")


def test_two_processes_creating_one_new_store_at_once_both_succeed(tmp_path):
    """Issue 36: two writers creating a new SQLite store at once failed 1 time in 4."""
    for attempt in range(4):
        url = f"sqlite:///{tmp_path / f'new{attempt}.db'}"
        code = "import sys; from appliance.store import db; db.open_store(sys.argv[1])"
        procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err


def test_a_locked_sqlite_store_waits_then_says_so(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    engine, _ = db.open_store(url)
    monkeypatch.setattr(db, "LOCK_WAIT_S", 0.5)
    blocker = engine.raw_connection()
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        other = db._engine(url)  # a second writer, with the short wait
        with pytest.raises(db.StoreError, match="stayed locked by another writer"):
            record.record(other, url, bench_doc(4000), "", "t")
    finally:
        blocker.rollback()
        blocker.close()


def test_the_report_shows_the_appliances_trend_from_the_store(store_url, tmp_path):
    engine, url = db.open_store(store_url)
    for night in range(4):
        record.record(engine, url, bench_doc(4000 + 100 * night) | {"night": night}, f"n{night}", "t")
    path = tmp_path / "r.json"
    results.write(path, bench_doc(4400))
    argv = [sys.executable, "-m", "appliance", "report", str(path), "-o", str(tmp_path / "r.html"), "--db", store_url]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r.html").read_text()
    assert "trend: this appliance in the results store" in html and html.count("<title>run set ") == 4
    done = subprocess.run([*argv, "--no-trend"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "trend:" not in (tmp_path / "r.html").read_text()
