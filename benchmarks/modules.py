"""Benchmark: the `disk` appliance with modules as we ship them (uncompressed, stripped)
against the same modules as the kernel package has them (`strip = false`).

Boots interleaved after one warm-up each; reports initrd sizes, the module load phase,
time to init_start and to payload_start, and the module closure against the whole
modules directory of the kernel.

    .venv/bin/python benchmarks/modules.py -n 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import results  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.boot.qemu import Channel  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402

PHASES = ("modules", "root", "init", "to_init", "total")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    choice = accel.choose("tcg")
    disk = ROOT / "rootfs_templates" / "disk.toml"
    with tempfile.TemporaryDirectory() as tmp:
        packaged = Path(tmp) / "disk-as-packaged.toml"
        packaged.write_text(disk.read_text().replace('rules = [', 'strip = false\nrules = ['))
        bundles = {"stripped (ours)": build_bundle(disk), "as packaged": build_bundle(packaged)}
    sessions = {name: Session(b, choice, Plan(Channel.TRACE, args.n, 1)) for name, b in bundles.items()}
    interleave(list(sessions.values()), 1, args.n, progress=None)
    print(f"accel {choice.accel}; n = {args.n} boots each, interleaved, after 1 warm-up each\n")
    print("| modules | initrd (zstd) | initrd (cpio) | modules bytes | " + " | ".join(f"{p} median ms" for p in PHASES) + " |")
    print("|---|---|---|---|" + "---|" * len(PHASES))
    for name, session in sessions.items():
        facts = bundles[name].manifest["build"]["initrd"]
        phases = results.summary(session.runs)["phases"]
        cells = " | ".join(f"{phases[p]['median']:.1f}" for p in PHASES)
        print(f"| {name} | {bundles[name].initrd.stat().st_size} | {facts['uncompressed_bytes']} | "
              f"{facts['modules_bytes']} | {cells} |")
    facts = bundles["stripped (ours)"].manifest["build"]["initrd"]
    print(f"\nmodule closure: {len(facts['modules'])} modules, {facts['modules_bytes']} bytes, against "
          f"{facts['modules_tree_bytes']} bytes for the kernel's whole modules directory "
          f"({facts['modules_bytes'] / facts['modules_tree_bytes'] * 100:.2f}%)")


if __name__ == "__main__":
    main()
