"""Restore against cold boot: the web appliance's QEMU launch -> first HTTP answer
(service_ready), booted cold and restored from a snapshot taken at service_ready,
interleaved, at three guest memory sizes, with the state file's size.

    .venv/bin/python benchmarks/snapshot.py [-n 6] [--memory 128,256,512]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.boot import accel  # noqa: E402
from appliance.boot import snapshot as taking  # noqa: E402
from appliance.boot.qemu import BootSpec  # noqa: E402
from appliance.runs import bench  # noqa: E402
from appliance.stats import ratio_ci  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=6)
    parser.add_argument("--memory", default="128,256,512")
    args = parser.parse_args()
    web = build_bundle("web")
    choice = accel.choose("tcg")
    work = Path(tempfile.mkdtemp(prefix="appliance-snapbench-"))
    print("| guest memory | state file | cold: launch -> first answer (median ms) | restore: launch -> first answer "
          "| restore / cold (95% CI) | restore phase (median ms) |")
    print("|---|---|---|---|---|---|")
    try:
        for mib in (int(m) for m in args.memory.split(",")):
            target = web.with_run(memory_mib=mib)
            snap = taking.take(BootSpec(target, choice.accel, 180), "service_ready", work / f"web-{mib}")
            plan = bench.Plan(n=args.n, warmup=1, timeout=180)
            cold, restored = (bench.Session(target, choice, p) for p in (plan, replace(plan, restore=snap)))
            bench.interleave([cold, restored], plan.warmup, plan.n, progress=None)
            figures = [[r["phases_ms"]["service_ready"] for r in s.runs if r["ok"] and not r["warmup"]]
                       for s in (cold, restored)]
            phase = [r["phases_ms"]["restore"] for r in restored.runs if r["ok"] and not r["warmup"]]
            low, high = ratio_ci(figures[0], figures[1], 0.95, 0)
            ratio = statistics.median(figures[1]) / statistics.median(figures[0])
            print(f"| {mib} MiB | {snap.state_bytes / 2**20:.1f} MiB | {statistics.median(figures[0]):.0f} | "
                  f"{statistics.median(figures[1]):.0f} | {ratio:.3f} ({low:.3f}-{high:.3f}) | "
                  f"{statistics.median(phase):.0f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
