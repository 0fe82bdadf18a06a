"""Benchmark: one host against `--cluster local:2` on this machine.

The same question (a 2-arm x 8-round compare of the minimal appliance with itself,
one warm-up round) asked REPEAT times each way, alternating: boots one at a time in
this process, and two in-process Dask workers each booting a block of 4 rounds (with
its own warm-up round). Reports the wall time of each (the goal: local:2 <= 0.6x one
host), the phase medians (what two boots at once cost each boot), and the spread of
the A/A ratio (its interval's width: how much the contention blurs a comparison).

    .venv/bin/python benchmarks/fleet.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import proc  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402


def ask(bundle: Path, cluster: str | None, out: Path) -> tuple[float, dict]:
    argv = [sys.executable, "-m", "appliance", "compare", str(bundle), str(bundle), "-n", "8", "--warmup", "1",
            "--accel", "tcg", "--no-record", "-o", str(out)]
    if cluster:
        argv += ["--cluster", cluster]
    started = time.monotonic()
    proc.run(argv, cwd=ROOT, timeout=1800)
    return time.monotonic() - started, json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    target = build_bundle("minimal").path
    walls: dict[str, list[float]] = {"one host": [], "local:2": []}
    medians: dict[str, list[float]] = {"one host": [], "local:2": []}
    widths: dict[str, list[float]] = {"one host": [], "local:2": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            for name, cluster in (("one host", None), ("local:2", "local:2")):
                wall, doc = ask(target, cluster, Path(tmp) / f"{k}-{name}.json")
                row = next(r for r in doc["comparison"]["rows"] if r["phase"] == "to_init")
                walls[name].append(wall)
                medians[name].append(row["median_a"])
                widths[name].append(row["ci"][1] - row["ci"][0])
                print(f"{name:<9} try {k + 1}: {wall:6.1f} s  to_init median A {row['median_a']:.1f} ms  "
                      f"B/A {row['ratio']:.3f} CI {row['ci'][0]:.3f}-{row['ci'][1]:.3f}", file=sys.stderr)
    print("| run | wall s (each try) | median wall s | to_init median ms | A/A ratio CI width (median) |")
    print("|---|---|---|---|---|")
    for name in walls:
        print(f"| {name} | {', '.join(f'{w:.1f}' for w in walls[name])} | {statistics.median(walls[name]):.1f} | "
              f"{statistics.median(medians[name]):.1f} | {statistics.median(widths[name]):.3f} |")
    ratio = statistics.median(walls["local:2"]) / statistics.median(walls["one host"])
    print(f"\nlocal:2 / one host wall time: {ratio:.2f}x (goal <= 0.6x); each boot's to_init with two at once: "
          f"{statistics.median(medians['local:2']) / statistics.median(medians['one host']):.2f}x")


if __name__ == "__main__":
    main()
