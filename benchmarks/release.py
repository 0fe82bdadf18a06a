"""Benchmark: release build time and sizes, and booting the ISO against the bundle.

The ISO boots through SeaBIOS and isolinux (El Torito, kernel and initrd read from the
CD); the bundle boots the same kernel and initrd directly (-kernel/-initrd, fw_cfg) on
the same pc-seabios machine. Interleaved after one warm-up each.

    .venv/bin/python benchmarks/release.py -n 5
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc, results  # noqa: E402
from appliance.assemble import release  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.boot.qemu import Channel  # noqa: E402
from appliance.machines import Machine  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    scons = [SCONS, "-Q"]
    proc.run([*scons, "appliance"], cwd=ROOT)
    shutil.rmtree(ROOT / "build" / "release", ignore_errors=True)
    started = time.perf_counter()
    proc.run([*scons, "release"], cwd=ROOT)
    build_s = time.perf_counter() - started
    out = ROOT / "build" / "release" / "benchmark"
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    choice = accel.choose("tcg")
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"bundle (direct, pc-seabios)": bundle.load(ROOT / "build" / "benchmark").with_machine(Machine.PC_SEABIOS),
                   "ISO (-cdrom, isolinux)": release.load_iso(out / "benchmark.iso", Path(tmp))}
        sessions = {name: Session(t, choice, Plan(Channel.TRACE, args.n, 1)) for name, t in targets.items()}
        interleave(list(sessions.values()), 1, args.n, progress=None)
    print(f"release build (scons release, bundle already built): {build_s:.2f} s")
    for name, size in sizes.items():
        print(f"- {name}: {size} bytes")
    print(f"\naccel {choice.accel}; n = {args.n} boots each, interleaved; median ms\n")
    print("| boot | to_init | total |\n|---|---|---|")
    medians = {}
    for name, session in sessions.items():
        phases = results.summary(session.runs)["phases"]
        medians[name] = (phases["to_init"]["median"], phases["total"]["median"])
        print(f"| {name} | {medians[name][0]:.1f} | {medians[name][1]:.1f} |")
    (direct, _), (iso, _) = medians.values()
    print(f"\nthe ISO path (isolinux reading the kernel and initrd from the CD) adds {iso - direct:.0f} ms to init_start")


if __name__ == "__main__":
    main()
