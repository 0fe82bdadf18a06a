"""Benchmark: QEMU launch -> the first HTTP answer of the `web` appliance.

Variants, booted interleaved (one of each per round, after one warm-up round) so this
noisy machine's drift hits all alike:
- web on Debian's kernel, microvm and q35-qboot;
- web-minimal on the minimal kernel, microvm (it has no PCI, so no q35);
- benchmark-minimal (on the userland fragment, as web-minimal), and the same appliance
  with [network] (the minimal kernel's network fragment and the interface brought up,
  no service), for what networking adds to the kernel and init phases.

For each: the phase split before the answer, `payload_start` measured from launch, the
host-clock `service_ready`, and per boot the ratio service_ready / payload_start (the goal
on the minimal kernel: at most 1.25).

    .venv/bin/python benchmarks/service.py -n 10 [--accel tcg]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.boot import accel, measure  # noqa: E402
from appliance.boot.qemu import BootSpec  # noqa: E402
from appliance.stats import summarize  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402

PHASES = ("qemu", "firmware", "kernel", "init", "to_payload", "service", "service_ready", "total")


def benchmark_variant(folder: Path, name: str, network: bool) -> Path:
    """benchmark-minimal on the kernel web-minimal uses less its network fragment (the
    userland fragment, as busybox needs), with or without [network] (no forward, no
    service): what the network alone costs. Both kernels are the ones the templates build."""
    text = (ROOT / "rootfs_templates" / "benchmark-minimal.toml").read_text()
    text = text.replace('kernel = "minimal"\n', 'kernel = "minimal"\nkernel_fragments = ["userland"]\n')
    path = folder / f"{name}.toml"
    path.write_text(text + ("\n[network]\n" if network else ""))
    return path


def to_payload(run: measure.BootRun) -> float | None:
    times = {e.name: e.host_time_ns for e in run.events}
    if "payload_start" not in times:
        return None
    return (times["payload_start"] - times["qemu_exec"]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--accel", default="tcg", choices=("auto", "kvm", "tcg"))
    args = parser.parse_args()
    choice = accel.choose(args.accel)
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "web, debian, microvm": build_bundle("web"),
            "web, debian, q35-qboot": build_bundle("web", "q35-qboot", MACHINE="q35-qboot"),
            "web-minimal, minimal, microvm": build_bundle("web-minimal"),
            "benchmark-minimal-userland": build_bundle(benchmark_variant(Path(tmp), "benchmark-minimal-userland", False)),
            "benchmark-minimal-userland + [network]": build_bundle(benchmark_variant(Path(tmp), "benchmark-minimal-net", True)),
        }
    samples: dict[str, dict[str, list[float]]] = {v: {p: [] for p in (*PHASES, "ratio")} for v in variants}
    for round_ in range(args.n + 1):
        for name, target in variants.items():
            run = measure.boot(BootSpec(target, choice.accel, 180))
            if round_ == 0:
                continue  # warm-up
            values = {**run.phases, "to_payload": to_payload(run)}
            for phase in PHASES:
                if values.get(phase) is not None:
                    samples[name][phase].append(float(values[phase]))  # type: ignore[arg-type]
            if values.get("service_ready") and values["to_payload"]:
                samples[name]["ratio"].append(values["service_ready"] / values["to_payload"])  # type: ignore[operator]
    (ROOT / "build" / "service-benchmark.json").write_text(json.dumps(samples, indent=1))  # the raw values
    print(f"accel: {choice.accel}; n = {args.n} boots each, interleaved, after 1 warm-up round; medians in ms\n")
    print("| variant | " + " | ".join(PHASES) + " | service_ready / payload_start (95% CI) |")
    print("|---|" + "---|" * (len(PHASES) + 1))
    for name in variants:
        cells = []
        for phase in PHASES:
            values = samples[name][phase]
            cells.append(f"{summarize(values).median:.1f}" if values else "-")
        ratio = samples[name]["ratio"]
        if ratio:
            s = summarize(ratio)
            ci = s.ci95_median
            cells.append(f"{s.median:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{s.median:.3f}")
        else:
            cells.append("-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    plain, net = samples["benchmark-minimal-userland"], samples["benchmark-minimal-userland + [network]"]
    for phase in ("kernel", "init", "to_payload"):
        a, b = summarize(plain[phase]).median, summarize(net[phase]).median
        print(f"\nnetwork on the minimal kernel, {phase}: {a:.1f} -> {b:.1f} ms ({(b / a - 1) * 100:+.1f}%)", end="")
    print()


if __name__ == "__main__":
    main()
