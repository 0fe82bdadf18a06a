"""Benchmark: one bundle under each machine, interleaved.

The `benchmark` appliance built for q35-qboot (so it carries our qboot), booted as
microvm, q35-qboot, pc-seabios and q35-ovmf (UEFI: Debian's OVMF loading the kernel
through its EFI stub), and the same appliance built for q35-ovmf (so it carries a UKI,
which OVMF runs as one EFI program), in turn, after one warm-up each. Reports medians of
the qemu, firmware, kernel and total phases (qboot's firmware split into setup and load;
SeaBIOS's and OVMF's inferred from the trace: from the first I/O write to the last
fw_cfg access, so OVMF's "firmware" ends when it has read the kernel in, and the EFI
stub's work and ExitBootServices count as kernel).

    .venv/bin/python benchmarks/machines.py -n 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc, results  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.boot.qemu import Channel  # noqa: E402
from appliance.machines import Machine  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402

PHASES = ("qemu", "firmware", "fw_setup", "fw_load", "kernel", "to_init", "total")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for machine in ("q35-qboot", "q35-ovmf"):
            template = Path(tmp) / f"benchmark-{machine.removeprefix('q35-')}.toml"
            template.write_text((ROOT / "rootfs_templates/benchmark.toml").read_text()
                                .replace('machine = "microvm"', f'machine = "{machine}"'))
            scons = SCONS
            proc.run([scons, "-Q", "appliance", f"TEMPLATE={template}"], cwd=ROOT)
    base = bundle.load(ROOT / "build" / "benchmark-qboot")
    choice = accel.choose("tcg")
    sessions = {m.value: Session(base.with_machine(m), choice, Plan(Channel.TRACE, args.n, 1))
                for m in (Machine.MICROVM, Machine.Q35_QBOOT, Machine.PC_SEABIOS, Machine.Q35_OVMF)}
    sessions["q35-ovmf (UKI)"] = Session(bundle.load(ROOT / "build" / "benchmark-ovmf"), choice,
                                         Plan(Channel.TRACE, args.n, 1))
    interleave(list(sessions.values()), 1, args.n, progress=None)
    print(f"accel {choice.accel}; n = {args.n} boots each, interleaved, after 1 warm-up each; median ms\n")
    print("| profile | " + " | ".join(PHASES) + " | firmware source |")
    print("|---|" + "---|" * (len(PHASES) + 1))
    medians = {}
    for name, session in sessions.items():
        phases = results.summary(session.runs)["phases"]
        medians[name] = {p: phases[p]["median"] for p in PHASES if p in phases}
        source = {"q35-qboot": "probes (BENCHMARK_HACK)", "microvm": "inferred (qboot's, QEMU's own)"}.get(
            name, "inferred from the trace")
        cells = " | ".join(f"{medians[name][p]:.1f}" if p in medians[name] else "-" for p in PHASES)
        print(f"| {name} | {cells} | {source} |")
    ratio = medians["pc-seabios"]["firmware"] / medians["q35-qboot"]["firmware"]
    lowest = min(medians, key=lambda m: medians[m]["total"])
    print(f"\ngoal: qboot's firmware phase at least 3x shorter than SeaBIOS's: {'met' if ratio >= 3 else 'MISSED'} "
          f"({ratio:.1f}x); microvm's total the lowest: {'met' if lowest == 'microvm' else 'MISSED'} "
          f"(lowest: {lowest})")


if __name__ == "__main__":
    main()
