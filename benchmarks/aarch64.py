"""Benchmark: aarch64 appliances on QEMU virt (Debian's arm64 kernel, TCG), and the
pruned device tree against QEMU's full one.

Four bundles, booted interleaved (one of each per round, after one warm-up round):
`minimal` (the init alone) and `benchmark`, each with the pruned board.dtb (the default)
and with QEMU's whole tree (`[devicetree] prune = false`). Reports each one's phase
medians, the benchmark appliance's boot to payload_end against the init-only one's to
init_start (the goal: within 1.03x; per-round ratios, paired), and what pruning changes.

    .venv/bin/python benchmarks/aarch64.py -n 10
    .venv/bin/python benchmarks/aarch64.py -n 30 --goal-only   # the goal's ratio with more rounds
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle  # noqa: E402
from appliance.boot import measure  # noqa: E402
from appliance.boot.qemu import BootSpec  # noqa: E402
from appliance.stats import summarize  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402

PHASES = ("qemu", "kernel", "init", "payload", "to_init", "total")


def build(template: Path) -> bundle.Bundle:
    """TEMPLATE built for aarch64 (into build/<name>+aarch64)."""
    return build_bundle(template, "aarch64", ARCH="aarch64")


def full_tree(folder: Path, template: str) -> Path:
    """TEMPLATE with QEMU's whole device tree."""
    path = folder / f"{template}-fulldtb.toml"
    path.write_text((ROOT / "rootfs_templates" / f"{template}.toml").read_text() + "\n[devicetree]\nprune = false\n")
    return path


def at(run: measure.BootRun, name: str) -> float | None:
    times = {e.name: e.host_time_ns for e in run.events}
    return (times[name] - times["qemu_exec"]) / 1e6 if name in times else None


def median(values: list[float]) -> float:
    return summarize(values).median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--goal-only", action="store_true",
                        help="only the two pruned bundles: more rounds for the 1.03x goal in the same time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "minimal, pruned": build(ROOT / "rootfs_templates" / "minimal.toml"),
            "benchmark, pruned": build(ROOT / "rootfs_templates" / "benchmark.toml"),
        }
        if not args.goal_only:
            variants["minimal, QEMU's tree"] = build(full_tree(Path(tmp), "minimal"))
            variants["benchmark, QEMU's tree"] = build(full_tree(Path(tmp), "benchmark"))
    samples: dict[str, dict[str, list[float]]] = {v: {p: [] for p in (*PHASES, "to_end")} for v in variants}
    trees = ("pruned",) if args.goal_only else ("pruned", "QEMU's tree")
    ratios: dict[str, list[float]] = {tree: [] for tree in trees}
    pruning: dict[str, list[float]] = {} if args.goal_only else {"minimal": [], "benchmark": []}  # kernel: pruned / full
    for round_ in range(args.n + 1):
        runs = {name: measure.boot(BootSpec(target, "tcg", 300)) for name, target in variants.items()}
        if round_ == 0:
            continue  # warm-up
        for name, run in runs.items():
            for phase in PHASES:
                if run.phases.get(phase) is not None:
                    samples[name][phase].append(float(run.phases[phase]))  # type: ignore[arg-type]
            end = at(run, "payload_end") or at(run, "init_start")
            if end is not None:
                samples[name]["to_end"].append(end)
        for kind in pruning:
            pruned, full = runs[f"{kind}, pruned"].phases["kernel"], runs[f"{kind}, QEMU's tree"].phases["kernel"]
            if pruned and full:
                pruning[kind].append(pruned / full)
        for tree in ratios:
            bench_end, init_end = at(runs[f"benchmark, {tree}"], "payload_end"), at(runs[f"minimal, {tree}"], "init_start")
            if bench_end and init_end:
                ratios[tree].append(bench_end / init_end)
    (ROOT / "build" / "aarch64-benchmark.json").write_text(json.dumps({"samples": samples, "ratios": ratios,
                                                                               "pruning": pruning}, indent=1))
    nodes = {name: target.manifest["device_tree"]["nodes"] for name, target in variants.items()}
    print(f"aarch64 on virt, TCG; n = {args.n} boots each, interleaved, after 1 warm-up round; medians in ms\n")
    print("| bundle | tree nodes | " + " | ".join(PHASES) + " | to payload_end (minimal: to init_start) |")
    print("|---|---|" + "---|" * (len(PHASES) + 1))
    for name in variants:
        cells = [f"{median(samples[name][p]):.1f}" if samples[name][p] else "-" for p in (*PHASES, "to_end")]
        print(f"| {name} | {nodes[name]} | " + " | ".join(cells) + " |")
    print()
    for tree, values in ratios.items():
        s = summarize(values)
        ci = s.ci95_median
        print(f"benchmark to payload_end / minimal to init_start, {tree}: median {s.median:.4f}"
              + (f" (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""))
    for kind, values in pruning.items():
        s = summarize(values)
        ci = s.ci95_median
        print(f"{kind}: kernel phase pruned / QEMU's tree, paired per round: median {s.median:.4f}"
              + (f" (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""))
    for kind in pruning:
        a, b = samples[f"{kind}, QEMU's tree"], samples[f"{kind}, pruned"]
        for phase in ("kernel", "to_init", "total"):
            full, pruned = median(a[phase]), median(b[phase])
            print(f"{kind}: {phase} {full:.1f} ms with QEMU's tree, {pruned:.1f} ms pruned ({(pruned / full - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
