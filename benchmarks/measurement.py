"""Benchmark: how much the runner costs, how much boots vary, and whether channels agree.

1. 20 traced boots of the default appliance: the runner's own overhead per boot (host
   wall time of a boot outside the QEMU process) and each phase's run-to-run spread.
2. The same bundle measured through trace, exit and serial, interleaved; exit boots are
   traced too, so trace and exit are also compared within the same boots.
3. The console's cost per character: serial-channel boots of a verbose copy of the
   bundle (loglevel=7), whose back-to-back kernel lines arrive one UART transfer apart.

    .venv/bin/python benchmarks/measurement.py [-n 20] [--pairs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc, results  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.boot.qemu import Channel  # noqa: E402
from appliance.runs import compare  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=5, help="runs per channel in the cross-check")
    args = parser.parse_args()
    scons = SCONS
    proc.run([scons, "-Q", "appliance"], cwd=ROOT)
    choice = accel.choose("tcg")
    target = bundle.load(ROOT / "build" / "benchmark")

    spread = Session(target, choice, Plan(Channel.TRACE, args.n, 1))
    interleave([spread], 1, args.n, progress=None)
    summary = results.summary(spread.runs)
    overhead, total = summary["runner_overhead_ms"], summary["phases"]["total"]
    print(f"## Runner overhead and spread ({args.n} traced boots, TCG)\n")
    print(f"- runner overhead per boot: median {overhead['median']:.1f} ms (max {overhead['max']:.1f}), "
          f"{overhead['median'] / total['median'] * 100:.2f}% of the median boot ({total['median']:.0f} ms); goal < 2%")
    print("\n| phase | median ms | stddev ms | CV | min-max ms | outlier runs |")
    print("|---|---|---|---|---|---|")
    for phase, s in summary["phases"].items():
        cv = s["stddev"] / s["mean"] * 100 if s["stddev"] is not None and s["mean"] else 0.0
        print(f"| {phase} | {s['median']:.1f} | {s['stddev']:.1f} | {cv:.1f}% | {s['min']:.1f}-{s['max']:.1f} | "
              f"{', '.join(map(str, s['outliers'])) or '-'} |")

    channels = (Channel.TRACE, Channel.EXIT, Channel.SERIAL)
    sessions = {c.value: Session(target, choice, Plan(c, args.pairs, 0, paired_trace=c is Channel.EXIT))
                for c in channels}
    for _ in range(args.pairs):
        for session in sessions.values():
            session.boot(warmup=False)
    check = compare.crosscheck({name: results.summary(s.runs) for name, s in sessions.items()})
    paired = compare.paired_disagreement(sessions["exit"].runs)
    print(f"\n## Channels ({args.pairs} runs each, interleaved)\n")
    print("```")
    print(compare.crosscheck_table(check))
    print(compare.paired_table(paired))
    print("```")
    worst = max(abs(v) for k, v in paired["phases"].items() if k not in ("to_init", "qemu"))
    print(f"\ngoal: trace-vs-exit disagreement < 2 ms per phase median (paired, same boots): "
          f"{'met' if worst < 2 else 'MISSED'} (worst {worst:.2f} ms)")

    with tempfile.TemporaryDirectory() as tmp:
        verbose_dir = Path(tmp) / "verbose"
        shutil.copytree(target.path, verbose_dir)
        manifest = json.loads((verbose_dir / "bundle.json").read_text())
        manifest["cmdline"] = manifest["cmdline"].replace("quiet", "loglevel=7")
        (verbose_dir / "bundle.json").write_text(json.dumps(manifest))
        verbose = Session(bundle.load(verbose_dir), choice, Plan(Channel.SERIAL, 3, 0))
        for _ in range(3):
            verbose.boot(warmup=False)
    uart = results.summary(verbose.runs)["uart_us_per_char"]
    print(f"\n## Console cost\n\n- {uart['median']:.2f} us per character (median of {uart['n']} verbose boots, "
          f"serial channel, from back-to-back kernel lines)")


if __name__ == "__main__":
    main()
