"""Benchmark: `scons appliance` wall time, full build from cached inputs and no-op.

Works on a private copy of the tree so your build/ is untouched. The kernel comes from
the download cache (filled beforehand), as "from cached inputs" means.

    .venv/bin/python benchmarks/build_time.py -n 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from appliance import proc  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc.run(argv, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    scons = [SCONS, "-Q", "appliance"]
    proc.run(scons, cwd=ROOT)  # fills the kernel cache
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "build", "__pycache__"))
        full, noop = [], []
        for _ in range(args.n):
            shutil.rmtree(tree / "build", ignore_errors=True)
            full.append(timed(scons, tree))
            noop.append(timed(scons, tree))
    print(f"n = {args.n}")
    for label, times, goal in (("full build from cached inputs", full, 2), ("no-op build", noop, 1)):
        print(f"- {label}: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}); goal < {goal} s")


if __name__ == "__main__":
    main()
