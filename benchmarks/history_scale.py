"""`appliance history` over a long history: a store of --boots boots (run sets of 10
boots of 8 phases each, with a 5% step halfway), then the history command timed as a
whole process, and its query and change-point parts in this process.

    .venv/bin/python benchmarks/history_scale.py [--boots 100000] [--db sqlite:///PATH]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from appliance import proc  # noqa: E402
from appliance.store import db, query, trend  # noqa: E402
from appliance.store.schema import documents, phases, run_sets  # noqa: E402

PHASES = ("qemu", "firmware", "kernel", "init", "payload", "to_init", "total", "k_init")


def fill(url: str, boots: int, per_set: int = 10) -> int:
    """BOOTS synthetic boots in run sets of PER_SET, written in bulk (as many records would)."""
    engine, _ = db.open_store(url)
    rng = random.Random(1)
    sets = boots // per_set
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        for i in range(sets):
            when = start + timedelta(hours=i)
            doc_id = connection.execute(insert(documents).values(
                sha256=f"{i:064x}", kind="bench", recorded_at=when, source="synthetic", body="{}")).inserted_primary_key[0]
            set_id = connection.execute(insert(run_sets).values(
                document_id=doc_id, recorded_at=when, kind="bench", side="", label=f"r{i}", template="benchmark",
                machine="microvm", arch="x86_64", accel="tcg", cpus=1, memory_mib=256, channel="trace",
                host_name="bench-host", qemu_version="QEMU 7.2", complete=True, boots=per_set,
                failed=0)).inserted_primary_key[0]
            base = 4000 * (1.05 if i >= sets // 2 else 1.0)
            connection.execute(insert(phases), [
                {"run_set_id": set_id, "boot": b, "name": name, "ms": base * (1 if name == "to_init" else 0.3)
                 + rng.gauss(0, 40)} for b in range(per_set) for name in PHASES])
    return sets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=100_000)
    parser.add_argument("--db", default=f"sqlite:///{Path(tempfile.mkdtemp(prefix='appliance-history-')) / 'r.db'}")
    args = parser.parse_args()
    started = time.monotonic()
    sets = fill(args.db, args.boots)
    print(f"store: {sets} run sets, {args.boots} boots, {args.boots * len(PHASES)} phase rows "
          f"(filled in {time.monotonic() - started:.1f} s)")
    engine, url = db.open_store(args.db)
    started = time.perf_counter()
    found = query.run_set_list(engine, url, {"template": "benchmark"})
    listed = time.perf_counter()
    points = query.points(engine, url, found, "to_init")
    read = time.perf_counter()
    changes = trend.change_points([p.median for p in points])
    done = time.perf_counter()
    print(f"in process: list {listed - started:.3f} s, phase rows {read - listed:.3f} s, change points "
          f"{done - read:.3f} s ({len(changes)} found: {[c.index for c in changes]})")
    for _ in range(3):
        started = time.perf_counter()
        proc.run([sys.executable, "-m", "appliance", "history", "--db", args.db, "--template", "benchmark",
                  "--json"], cwd=ROOT)
        print(f"appliance history (whole process): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
