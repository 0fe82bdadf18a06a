"""Benchmark: a distribution's own boot (issue 40's proof). Debian bookworm with systemd
and sshd (rootfs_templates/images/make-debian-systemd), booted by its own init, measured
from the host phase by phase beside systemd-analyze's view of the same boots.

Three bundles of one image, interleaved in a random balanced order after one warm-up
each, TCG: the shipped template (Debian's kernel, an EROFS root under a tmpfs overlay),
the same on an ext4 root, and the same on the minimal kernel (kernel_fragments
"userland" and "systemd"). Each is booted N times on the wall clock and N times on the
instruction clock (separate interleaved passes: the plugin costs wall time). Prints the
phases' medians (ms, with min-max) and instructions (millions, with their range), and
systemd-analyze's kernel and userspace beside the host's.

    .venv/bin/python benchmarks/distro.py -n 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import proc, results, systemdview  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.clocks import Clock, Unit  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402

IMAGE = ROOT / "rootfs_templates" / "images" / "debian-systemd.tar"
SHIPPED = ROOT / "rootfs_templates" / "debian-systemd.toml"
PHASES = ("kernel", "initrd", "sysinit", "basic", "multi_user", "userspace", "to_multi_user", "service_ready", "total")
VARIANTS = {  # name -> what changes in the shipped template
    "debian-systemd": {},
    "debian-systemd-ext4": {'format = "erofs"\nwritable = "tmpfs"': 'format = "ext4"\nsize_mib = 512',
                            '"fs-erofs", "overlay"': '"fs-ext4"'},
    "debian-systemd-minimal": {"[appliance]\n": '[appliance]\nkernel = "minimal"\nkernel_fragments = ["userland", "systemd"]\n',
                               '[modules]\nrules = ["virtio_mmio", "virtio_blk", "fs-erofs", "overlay"]\n': ""},
}


def template(name: str, changes: dict[str, str], folder: Path) -> Path:
    """The shipped template with CHANGES, as NAME.toml in FOLDER (its image by absolute path)."""
    text = SHIPPED.read_text().replace('"images/debian-systemd.tar"', f'"{IMAGE}"')
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def ms_row(runs: list[results.RunRecord], phase: str) -> str:
    values = [v for v in results.phase_values(runs, phase) if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def insn_row(runs: list[results.RunRecord], phase: str) -> str:
    values = [v for v in results.phase_values(runs, phase, Unit.INSTRUCTIONS) if v is not None]
    if not values:
        return "-"
    middle = statistics.median(values)
    return f"{middle / 1e6:.1f} ({(max(values) - min(values)) / middle * 100:.3f}%)"


def table(title: str, runs: dict[str, list[results.RunRecord]], row) -> None:  # type: ignore[no-untyped-def]
    """A Markdown table of PHASES by bundle, each cell ROW(runs, phase)."""
    print(f"{title}\n")
    print("| phase | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for phase in PHASES:
        print(f"| {phase} | " + " | ".join(row(runs[name], phase) for name in runs) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    if not IMAGE.is_file():
        proc.run([str(IMAGE.parent / "make-debian-systemd"), str(IMAGE)], capture=False)
    folder = ROOT / "build" / "bench-distro"
    folder.mkdir(parents=True, exist_ok=True)
    bundles = {name: build_bundle(template(name, changes, folder)) for name, changes in VARIANTS.items()}
    choice = accel.choose("tcg")
    passes: dict[Clock, dict[str, Session]] = {}
    for clock in (Clock.WALL, Clock.INSTRUCTIONS):
        plan = Plan(n=args.n, warmup=1, timeout=300, clock=clock)
        passes[clock] = {name: Session(b, choice, plan) for name, b in bundles.items()}
        interleave(list(passes[clock].values()), 1, args.n, progress=None)
    print(f"accel {choice.accel}; n = {args.n} boots of each bundle per clock, interleaved in a random balanced "
          "order after 1 warm-up each\n")
    wall = {name: results.counted(s.runs) for name, s in passes[Clock.WALL].items()}
    counted = {name: results.counted(s.runs) for name, s in passes[Clock.INSTRUCTIONS].items()}
    table("wall clock, ms from the phase's start: median (min-max)", wall, ms_row)
    table("\ninstruction clock, millions of guest instructions: median (range over the median)", counted, insn_row)
    print("\nsystemd-analyze against the host, wall-clock boots, medians (ms)\n")
    print("| bundle | systemd kernel | host kernel + initrd | of the difference: before the guest's clock, "
          "systemd's start; left | systemd userspace | host userspace | of the difference: systemd's start, "
          "report lag; left | failed units |")
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in wall.items():
        view = systemdview.summary([(r["systemd"], results.phases_of(r), results.guest_ms(r))
                                    for r in runs if "systemd" in r])
        rows = {row["what"]: row for row in view["against_host"]}
        print(f"| {name} | {rows['kernel']['systemd_ms']:.0f} | {rows['kernel']['host_ms']:.0f} | "
              f"{explained(rows['kernel'])} | {rows['userspace']['systemd_ms']:.0f} | "
              f"{rows['userspace']['host_ms']:.0f} | {explained(rows['userspace'])} | "
              f"{', '.join(view['failed']) or 'none'} |")


def explained(row: dict) -> str:
    """The parts of host - systemd the guest's probe times account for, and what is left."""
    parts = row["because"]
    left = row["host_ms"] - row["systemd_ms"] - sum(parts.values())
    return ", ".join(f"{ms:+.0f}" for ms in parts.values()) + f"; {left:+.0f}"


if __name__ == "__main__":
    main()
