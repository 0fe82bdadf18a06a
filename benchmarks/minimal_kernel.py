"""Benchmark: the minimal kernel against the Debian kernel, same appliance, interleaved.

Builds the `benchmark` appliance on the Debian kernel and on the minimal kernel with each
image compression (none = vmlinux through PVH, lz4, zstd, xz), all on microvm, then
boots them in turn, after one warm-up each. Reports the kernel phase (kernel entry to
init_start) and its split by the kernel's own probes, the image size per compression,
and the minimal kernel's build time: cold (empty object tree, source already fetched)
and no-op (`scons` again with nothing changed).

    .venv/bin/python benchmarks/minimal_kernel.py -n 10
    .venv/bin/python benchmarks/minimal_kernel.py --cold-only     the cold build alone
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc, results, stats  # noqa: E402
from appliance.assemble import kernelfetch, minikernel  # noqa: E402
from appliance.assemble.minikernel import FRAGMENTS, MINIMAL, SOURCE_LOCK  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.boot.qemu import Channel  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402

COMPRESSIONS = ("none", "lz4", "zstd", "xz")
PHASES = ("kernel", "k_decomp", "k_init", "k_exec", "to_init", "total")


def build(template: Path) -> float:
    started = time.monotonic()
    proc.run([SCONS, "-Q", "appliance", f"TEMPLATE={template}"], cwd=ROOT)
    return time.monotonic() - started


def templates(folder: Path) -> dict[str, Path]:
    """debian, and minimal-<compression>: the benchmark template with only the kernel changed."""
    text = (ROOT / "rootfs_templates/benchmark.toml").read_text()
    out = {"debian": folder / "bench-debian.toml"}
    out["debian"].write_text(text)
    for compression in COMPRESSIONS:
        path = folder / f"bench-minimal-{compression}.toml"
        path.write_text(text.replace("[appliance]\n", f'[appliance]\nkernel = "minimal"\nkernel_compression = "{compression}"\n'))
        out[f"minimal-{compression}"] = path
    return out


def cold_build_seconds() -> float:
    """The minimal kernel built from scratch into an empty cache (the source tree reused)."""
    lock = minikernel.read_lock(SOURCE_LOCK)
    source = minikernel.fetch_source(lock, kernelfetch.cache_dir())
    recipe = minikernel.Recipe(lock.deb_sha256, minikernel.read_fragments(MINIMAL, FRAGMENTS),
                               minikernel.patches(), "zstd")
    with tempfile.TemporaryDirectory(dir=kernelfetch.cache_dir()) as tmp:
        started = time.monotonic()
        minikernel.build(recipe, source, Path(tmp), jobs=2)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--skip-cold", action="store_true", help="do not time a cold kernel build")
    parser.add_argument("--cold-only", action="store_true", help="only time a cold kernel build")
    args = parser.parse_args()
    if args.cold_only:
        print(f"build: cold minimal kernel (zstd bzImage, -j2) {cold_build_seconds():.0f} s")
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = templates(Path(tmp))
        for path in paths.values():
            build(path)
        noop = statistics.median(build(paths["minimal-none"]) for _ in range(3))
    bundles = {name: bundle.load(ROOT / "build" / path.stem) for name, path in paths.items()}
    choice = accel.choose("tcg")
    sessions = {name: Session(b, choice, Plan(Channel.TRACE, args.n, 1)) for name, b in bundles.items()}
    interleave(list(sessions.values()), 1, args.n, progress=None)
    print(f"accel {choice.accel}; microvm; n = {args.n} boots each, interleaved, after 1 warm-up each; median ms\n")
    print("| kernel | image bytes | " + " | ".join(PHASES) + " |")
    print("|---|---:|" + "---:|" * len(PHASES))
    kernel_ms = {}
    for name, session in sessions.items():
        phases = results.summary(session.runs)["phases"]
        kernel_ms[name] = [r["phases_ms"]["kernel"] for r in results.counted(session.runs)]
        cells = " | ".join(f"{phases[p]['median']:.1f}" if p in phases else "-" for p in PHASES)
        print(f"| {name} | {bundles[name].kernel.stat().st_size:,} | {cells} |")
    print()
    best = min((n for n in kernel_ms if n != "debian"), key=lambda n: statistics.median(kernel_ms[n]))
    for name in [n for n in kernel_ms if n != "debian"]:
        ratio = statistics.median(kernel_ms["debian"]) / statistics.median(kernel_ms[name])
        ci = stats.ratio_ci(kernel_ms[name], kernel_ms["debian"])
        span = f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else ""
        print(f"kernel phase, debian / {name}: {ratio:.2f}x{span}")
    ratio = statistics.median(kernel_ms["debian"]) / statistics.median(kernel_ms[best])
    print(f"\ngoal: minimal kernel phase at least 5x shorter than Debian's: {'met' if ratio >= 5 else 'MISSED'} "
          f"({ratio:.2f}x with {best})")
    print(f"build: no-op scons {noop:.2f} s (median of 3)")
    if not args.skip_cold:
        print(f"build: cold minimal kernel (zstd bzImage, -j2) {cold_build_seconds():.0f} s")


if __name__ == "__main__":
    main()
