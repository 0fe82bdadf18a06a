"""Benchmark: the default `benchmark` appliance against the `minimal` lower bound.

Same kernel, same machine; boots interleaved (minimal, benchmark, minimal, ...) after one
warm-up each so drift of this noisy machine hits both alike. Reports initrd sizes and the
medians of the kernel phase (kernel entry -> init_start), to_init and total.

    .venv/bin/python benchmarks/template_overhead.py -n 10 [--accel tcg]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.assemble import compress, cpio  # noqa: E402
from appliance.boot import accel, measure  # noqa: E402
from appliance.boot.qemu import BootSpec  # noqa: E402
from appliance.stats import summarize  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402

TEMPLATES = ("minimal", "benchmark")
PHASES = ("kernel", "to_init", "total")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--accel", default="tcg", choices=("auto", "kvm", "tcg"))
    args = parser.parse_args()
    choice = accel.choose(args.accel)
    bundles = {t: build_bundle(t) for t in TEMPLATES}
    samples: dict[str, dict[str, list[float]]] = {t: {p: [] for p in PHASES} for t in TEMPLATES}
    for round_ in range(args.n + 1):
        for t in TEMPLATES:
            run = measure.boot(BootSpec(bundles[t], choice.accel, 120))
            if round_ == 0:
                continue  # warm-up
            for p in PHASES:
                value = run.phases[p]
                assert value is not None, f"{t}: phase {p} missing"
                samples[t][p].append(value)
    print(f"accel: {choice.accel}; n = {args.n} boots each, interleaved, after 1 warm-up each\n")
    print("| template | initrd (compressed) | initrd (cpio) | " + " | ".join(f"{p} median ms (95% CI)" for p in PHASES) + " |")
    print("|---|---|---|" + "---|" * len(PHASES))
    medians: dict[str, dict[str, float]] = {}
    for t in TEMPLATES:
        data = bundles[t].initrd.read_bytes()
        raw = compress.decompress(data)
        cpio.read(raw)  # proves it is a valid archive
        cells = []
        medians[t] = {}
        for p in PHASES:
            s = summarize(samples[t][p])
            assert s is not None
            medians[t][p] = s.median
            ci = f"{s.ci95_median[0]:.1f}-{s.ci95_median[1]:.1f}" if s.ci95_median else "n/a"
            cells.append(f"{s.median:.1f} ({ci})")
        print(f"| {t} | {len(data)} B | {len(raw)} B | " + " | ".join(cells) + " |")
    print()
    for p in PHASES:
        ratio = medians["benchmark"][p] / medians["minimal"][p]
        print(f"- {p}: benchmark / minimal = {ratio:.4f} ({(ratio - 1) * 100:+.2f}%)")
    kernel_ratio = medians["benchmark"]["kernel"] / medians["minimal"]["kernel"]
    size = bundles["benchmark"].initrd.stat().st_size
    print(f"\ngoal: benchmark adds < 3% to kernel-to-init_start: {'met' if kernel_ratio < 1.03 else 'MISSED'}; "
          f"initrd < 64 KiB: {'met' if size < 65536 else 'MISSED'} ({size} B)")


if __name__ == "__main__":
    main()
