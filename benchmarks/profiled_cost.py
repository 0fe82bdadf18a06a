"""Benchmark: what profiled costs the boot it reports on.

The `profiled` template (forker payload, Debian kernel, microvm) against the same
template without its [profiled] table, and the same pair on the minimal kernel, booted
in turn after one warm-up each. Reports init_start to payload_end (the part of the boot
profiled runs in: it starts after init_start, so the kernel phase before it only adds
noise to a comparison), the time to payload_end (the boot the appliance exists for, the
denominator of the cost), the init phase (where profiled starts), the total (which also
holds profiled's final write to its channel), the time from payload_end to QEMU's exit
(where that write happens; one more variant uses the virtio-console channel), and
profiled's binary size.

    .venv/bin/python benchmarks/profiled_cost.py -n 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc, results, stats  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.boot.qemu import Channel  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402


def variants(folder: Path) -> dict[str, Path]:
    text = (ROOT / "rootfs_templates/profiled.toml").read_text()
    without = text[:text.index("[profiled]")]
    out = {}
    for kernel in ("debian", "minimal"):
        for name, body in (("with", text), ("without", without)):
            path = folder / f"pc-{kernel}-{name}.toml"
            path.write_text(body.replace("[appliance]\n", f'[appliance]\nkernel = "{kernel}"\n'))
            out[f"{kernel} {name}"] = path
    # the virtio-console channel, for its write time only (its modules make the init longer)
    path = folder / "pc-debian-virtio.toml"
    path.write_text(text.replace('channel = "serial"', 'channel = "virtio"')
                    .replace("[programs]", '[modules]\nrules = ["virtio_mmio", "virtio_console"]\n\n[programs]'))
    out["debian with, virtio channel"] = path
    return out


def times(run: dict) -> dict[str, float]:
    return {e["name"]: e["t_ms"] for e in run["events"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = variants(Path(tmp))
        for path in paths.values():
            proc.run([SCONS, "-Q", "appliance", f"TEMPLATE={path}"], cwd=ROOT)
    choice = accel.choose("tcg")
    sessions = {name: Session(bundle.load(ROOT / "build" / path.stem), choice, Plan(Channel.TRACE, args.n, 1))
                for name, path in paths.items()}
    interleave(list(sessions.values()), 1, args.n, progress=None)
    size = (ROOT / "build/programs/profiled").stat().st_size
    print(f"accel {choice.accel}; microvm; n = {args.n} boots each, interleaved, after 1 warm-up each; median ms")
    print(f"profiled binary: {size:,} bytes (static, stripped)\n")
    print("| variant | init_start to payload_end | to payload_end | init phase | payload_end to exit | total |")
    print("|---|---:|---:|---:|---:|---:|")
    figures: dict[str, dict[str, list[float]]] = {}
    for name, session in sessions.items():
        runs = results.counted(session.runs)
        t = [times(r) for r in runs]
        figures[name] = {"work": [x["payload_end"] - x["init_start"] for x in t],
                         "end": [x["payload_end"] for x in t],
                         "init": [r["phases_ms"]["init"] for r in runs],
                         "after": [r["phases_ms"]["total"] - x["payload_end"] for r, x in zip(runs, t, strict=True)],
                         "total": [r["phases_ms"]["total"] for r in runs]}
        f = {k: statistics.median(v) for k, v in figures[name].items()}
        print(f"| {name} | {f['work']:.1f} | {f['end']:.1f} | {f['init']:.1f} | {f['after']:.1f} | {f['total']:.1f} |")
    print()
    for kernel in ("debian", "minimal"):
        a, b = figures[f"{kernel} without"], figures[f"{kernel} with"]
        extra = statistics.median(b["work"]) - statistics.median(a["work"])
        share = extra / statistics.median(a["end"])
        ci = stats.ratio_ci(a["work"], b["work"])
        span = f" (init_start-payload_end ratio 95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
        total = statistics.median(b["total"]) - statistics.median(a["total"])
        print(f"{kernel}: profiled adds {extra:+.1f} ms between init_start and payload_end{span}, "
              f"{share * 100:+.2f}% of the boot to payload_end; total {total:+.1f} ms")
        print(f"  goal < 1%: {'met' if share < 0.01 else 'MISSED'}")
    print(f"goal < 32 KiB: {'met' if size < 32768 else 'MISSED'} ({size:,} bytes)")


if __name__ == "__main__":
    main()
