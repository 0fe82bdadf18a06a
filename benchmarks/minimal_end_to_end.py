"""Benchmark: the minimal-kernel appliance against the Debian one, launch -> payload_end.

`benchmark` (Debian's kernel) and `benchmark-minimal` (the minimal kernel, vmlinux through
PVH), both microvm, 256 MiB, one vCPU, booted in rounds (each round both, in a random
order) after one warm-up each. Prints the medians of launch -> payload_end and of the
kernel phase and the minimal kernel's k_init (start_kernel -> the exec of /init, from
its probe patch), and the ratio (the goal: <= 0.10x). With --also BUNDLE, another bundle
joins the rounds (an earlier build, to measure a change).

    .venv/bin/python benchmarks/minimal_end_to_end.py -n 20 [--also build/old-minimal]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, results  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import at, build_bundle  # noqa: E402


def median_of(runs: list[dict], value) -> float:  # noqa: ANN001
    got = [v for r in runs if (v := value(r)) is not None]
    return statistics.median(got) if got else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--also", action="append", default=[], help="another bundle in the rounds")
    args = parser.parse_args()
    choice = accel.choose("tcg")
    bundles = {"debian": build_bundle("benchmark"), "minimal": build_bundle("benchmark-minimal"),
               **{Path(p).name + " (--also)": bundle.load(Path(p)) for p in args.also}}
    sessions = {name: Session(b, choice, Plan(n=args.n, warmup=1)) for name, b in bundles.items()}
    interleave(list(sessions.values()), 1, args.n, progress=None)
    print(f"accel {choice.accel}; n = {args.n} rounds after 1 warm-up each; median ms\n")
    print("| bundle | launch -> payload_end | kernel | k_init | / debian, launch -> payload_end |")
    print("|---|---:|---:|---:|---:|")
    ends = {}
    for name, session in sessions.items():
        runs = results.counted(session.runs)
        ends[name] = median_of(runs, lambda r: at(r, "payload_end"))
        kernel = median_of(runs, lambda r: r["phases_ms"].get("kernel"))
        k_init = median_of(runs, lambda r: r["phases_ms"].get("k_init"))
        print(f"| {name} | {ends[name]:.1f} | {kernel:.1f} | {k_init:.1f} | {ends[name] / ends['debian']:.3f}x |")
    print("\ngoal: the minimal-kernel appliance at <= 0.10x the Debian one, launch -> payload_end")


if __name__ == "__main__":
    main()
