"""Benchmark: python's packages in the initramfs against an EROFS root (virtio-blk and pmem
with DAX), and the init-only lower bound, interleaved.

Four bundles, one boot of each per round in a random balanced order, after one warm-up
each, TCG: `minimal` (the init alone: the lower bound), `python` (35 MB of packages in the
initramfs), `python-erofs` (the packages on an EROFS root on virtio-blk) and
`python-erofs-pmem` (on a vNVDIMM with DAX; pc-seabios, as NVDIMMs need ACPI). Reports
medians of to_init, launch -> payload_start and launch -> payload_end, and each
python's launch -> payload_start against the lower bound's launch -> init_start (the
goal: <= 1.05x).

    .venv/bin/python benchmarks/erofs.py -n 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import results  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import at, build_bundle  # noqa: E402

BUNDLES = ("minimal", "python", "python-erofs", "python-erofs-pmem")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()
    choice = accel.choose("tcg")
    sessions = {name: Session(build_bundle(name), choice, Plan(n=args.n, warmup=1)) for name in BUNDLES}
    interleave(list(sessions.values()), 1, args.n, progress=None)
    rows = {}
    for name, session in sessions.items():
        counted = results.counted(session.runs)
        rows[name] = {"to_init": statistics.median(r["phases_ms"]["to_init"] for r in counted)}
        for probe in ("payload_start", "payload_end"):  # minimal has no payload: the init alone
            times = [t for r in counted if (t := at(r, probe)) is not None]
            rows[name][probe] = statistics.median(times) if times else float("nan")
    bound = rows["minimal"]["to_init"]
    print(f"accel {choice.accel}; n = {args.n} boots each, interleaved in a random balanced order, after 1 warm-up; "
          "median ms from QEMU's launch\n")
    print("| bundle | to_init | payload_start | payload_end | payload_start / lower bound |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        ratio = row["payload_start"] / bound if name != "minimal" else float("nan")
        print(f"| {name} | {row['to_init']:.1f} | {row['payload_start']:.1f} | {row['payload_end']:.1f} | "
              f"{ratio:.3f}x |")
    print(f"\nlower bound: minimal's launch -> init_start, {bound:.1f} ms; goal for python: <= 1.05x")


if __name__ == "__main__":
    main()
