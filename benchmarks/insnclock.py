"""The instruction clock against the wall clock (issue 38's proof), on real boots.

1. Spread: N boots of each clock interleaved (wall, instructions, virtual), quiet and
   then with a CPU hog beside them (two `yes` processes): p90/p10 of each phase in
   instructions, and of the wall phase in the same boots.
2. Gates: pools of real boots on the instruction clock resampled into gates (the real
   rule, runs/gate.decide in instructions): A/A at 3 boots a side, the baseline from the
   quiet pool and the candidate from the hogged one (a baseline taken under another
   load); and a real change of about +1% of the kernel phase (--change words on the
   kernel command line) at 3 and 5 boots a side.
3. Overhead: the wall time of `instructions` and `virtual` boots against `wall` boots
   of the same rounds (ratio of medians; the rounds are interleaved).

    .venv/bin/python benchmarks/insnclock.py [--template benchmark-minimal] [--clock virtual] [-n 20]
        [--change loglevel=7] [--trials 40] [--phase to_init] [--no-hog]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import proc, results  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.clocks import Clock, Unit  # noqa: E402
from appliance.runs import bench, gate  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402


@contextmanager
def cpu_hog(on: bool) -> Iterator[None]:
    """Two busy `yes` processes for the block's duration (this machine has 2 cores)."""
    hogs = [proc.spawn(["yes"], stdout=proc.DEVNULL) for _ in range(2 if on else 0)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.end()


def p90_p10(values: list[float]) -> float:
    ordered = sorted(values)
    low, high = ordered[int(len(ordered) * 0.1)], ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return high / low if low else float("nan")


def boots(target: Any, plans: dict[str, bench.Plan], n: int) -> dict[str, list[dict[str, Any]]]:
    """N counted boots of each plan, interleaved round by round; the counted runs by name."""
    choice = accel.choose("tcg")
    sessions = {name: bench.Session(target, choice, plan) for name, plan in plans.items()}
    bench.interleave(list(sessions.values()), 1, n, progress=None)
    return {name: results.counted(s.runs) for name, s in sessions.items()}


def values(runs: list[dict[str, Any]], phase: str, unit: Unit) -> list[float]:
    return [v for r in runs if (v := (r.get(unit.phases_key) or {}).get(phase)) is not None]


def spread_rows(label: str, runs: dict[str, list[dict[str, Any]]], phases: list[str]) -> None:
    for clock, counted in runs.items():
        for phase in phases:
            wall = values(counted, phase, Unit.MS)
            insns = values(counted, phase, Unit.INSTRUCTIONS)
            if not wall:  # a phase this kernel has no probes for (k_init: the minimal kernel's)
                continue
            count = (f"{p90_p10(insns):.6f} (range {(max(insns) - min(insns)) / min(insns) * 100:.4f}%, "
                     f"{len(set(insns))} distinct)") if insns else "-"
            print(f"| {label} | {clock} | {phase} | {len(counted)} | "
                  f"{statistics.median(insns) / 1e6 if insns else float('nan'):.3f} | {count} | "
                  f"{statistics.median(wall):.1f} | {p90_p10(wall):.3f} |")


def gates(base: list[dict[str, Any]], cand: list[dict[str, Any]], n: int, trials: int, phase: str,
          rng: random.Random) -> Counter[str]:
    verdicts: Counter[str] = Counter()
    for _ in range(trials):
        decision = gate.decide(rng.sample(base, n), rng.sample(cand, n), phase, unit=Unit.INSTRUCTIONS)
        verdicts[decision.verdict] += 1
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--template", default="benchmark-minimal")
    parser.add_argument("--clock", default="virtual", choices=["instructions", "virtual"],
                        help="the counting clock the gates use")
    parser.add_argument("-n", type=int, default=20, help="boots of each clock, quiet and hogged")
    parser.add_argument("--change", default="loglevel=7", help="kernel words that make the candidate slower")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--phase", default="to_init")
    parser.add_argument("--no-hog", action="store_true")
    parser.add_argument("--clocks", default="wall,instructions,virtual",
                        help="the clocks to boot (the gates' --clock among them; overhead needs wall)")
    args = parser.parse_args()
    target = build_bundle(args.template)
    counting = Clock(args.clock)
    plans = {c.value: bench.Plan(n=args.n, warmup=1, timeout=300, clock=c) for c in Clock
             if c.value in args.clocks.split(",") or c is counting}
    phases = ["kernel", "k_init", "to_init", "payload"]
    print(f"{args.template}: {args.n} boots per clock, interleaved; TCG\n")
    print("| load | clock | phase | n | median (M insns) | p90/p10 of instructions | median wall (ms) | "
          "p90/p10 of wall |")
    print("|---|---|---|---|---|---|---|---|")
    quiet = boots(target, plans, args.n)
    spread_rows("quiet", quiet, phases)
    hogged: dict[str, list[dict[str, Any]]] = {}
    if not args.no_hog:
        with cpu_hog(True):
            hogged = boots(target, plans, args.n)
        spread_rows("2 x yes", hogged, phases)
    if "wall" in quiet:
        wall = statistics.median(values(quiet["wall"], "total", Unit.MS))
        print("\nplugin overhead (quiet rounds; median total wall time against the wall clock's):")
        for clock in ("instructions", "virtual"):
            if clock in quiet:
                print(f"  {clock}: {statistics.median(values(quiet[clock], 'total', Unit.MS)) / wall:.3f}x")
    with cpu_hog(False):
        changed = boots(target, {"changed": replace(plans[counting.value], extra_cmdline=args.change)}, args.n)["changed"]
    base, again = quiet[counting.value], hogged.get(counting.value) or quiet[counting.value]
    rise = statistics.median(values(changed, args.phase, Unit.INSTRUCTIONS)) / statistics.median(
        values(base, args.phase, Unit.INSTRUCTIONS)) - 1
    kernel = "k_init" if values(base, "k_init", Unit.INSTRUCTIONS) else "to_init (the kernel's, from exec)"
    kernel_phase = kernel.split()[0]
    kernel_rise = statistics.median(values(changed, kernel_phase, Unit.INSTRUCTIONS)) / statistics.median(
        values(base, kernel_phase, Unit.INSTRUCTIONS)) - 1
    print(f"\n--append {args.change!r}: {args.phase} {rise * 100:+.3f}%, {kernel} {kernel_rise * 100:+.3f}% "
          f"(instructions, {args.clock})\n")
    rng = random.Random(1)
    print(f"| gate ({args.clock}, {args.phase}, threshold {gate.COUNT_THRESHOLD:g}) | boots a side | trials | pass | "
          "fail | inconclusive |")
    print("|---|---|---|---|---|---|")
    for label, cand, n in (("A/A, candidate under the hog", again, 3), (f"+{args.change}", changed, 3),
                           (f"+{args.change}", changed, 5)):
        verdicts = gates(base, cand, n, args.trials, args.phase, rng)
        print(f"| {label} | {n} | {args.trials} | {verdicts[gate.PASS]} | {verdicts[gate.FAIL]} | "
              f"{verdicts[gate.INCONCLUSIVE]} |")


if __name__ == "__main__":
    main()
