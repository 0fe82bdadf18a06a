"""The regression gate's false-alarm rate and power, from real boots resampled.

A pool of real boots of one appliance (booted now, or --pool RESULTS) is split at random
into a baseline and a candidate of -n boots each, many times: with the candidate as it
is (an A/A gate: every FAIL is a false alarm), and with the candidate's primary phase
made 10% slower (every FAIL is a detection; the power). Each gate is the real rule
(runs/gate.decide) at the default threshold, non-sequential at -n, and sequential
(-n, then on in steps of -n up to --max-n while undecided, as `gate --bench` does).

    .venv/bin/python benchmarks/gate.py [--pool RESULTS | --template benchmark-minimal --boots 80]
        [-n 6 --max-n 18] [--trials 200] [--phase to_init] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import results  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.runs import bench, compare, gate  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402


def slowed(run: dict[str, Any], phase: str, factor: float) -> dict[str, Any]:
    return {**run, "phases_ms": {**run["phases_ms"], phase: run["phases_ms"][phase] * factor}}


def one_gate(pool: list[dict[str, Any]], rng: random.Random, n: int, max_n: int, phase: str, factor: float) -> tuple[str, int]:
    """A resampled gate: the verdict, and the boots a side it took."""
    drawn = rng.sample(pool, 2 * max_n)
    base, cand = drawn[:max_n], [slowed(r, phase, factor) for r in drawn[max_n:]]
    looks = compare.looks_for(n, max_n)
    for look in looks:
        decision = gate.decide(base[:look], cand[:look], phase, threshold=gate.THRESHOLD, confidence=0.95, looks=len(looks))
        if decision.verdict != gate.INCONCLUSIVE:
            return decision.verdict, look
    return decision.verdict, looks[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", help="a results file whose counted boots are the pool (else boot --boots now)")
    parser.add_argument("--template", default="benchmark-minimal")
    parser.add_argument("--boots", type=int, default=80)
    parser.add_argument("-n", type=int, default=6)
    parser.add_argument("--max-n", type=int, default=18)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--phase", default="to_init")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.pool:
        pool = results.counted(results.main_side(results.read(Path(args.pool)))["runs"])
    else:
        target = build_bundle(args.template)
        out = Path(tempfile.gettempdir()) / f"gate-pool-{args.template}.json"
        doc = bench.bench(target, accel=accel.choose("tcg"), plan=bench.Plan(n=args.boots, warmup=1), out=out)
        pool = results.counted(doc["runs"])
        print(f"pool: {len(pool)} boots of {args.template} in {out}", file=sys.stderr)
    values = sorted(r["phases_ms"][args.phase] for r in pool)
    print(f"pool: {len(pool)} boots, {args.phase} median {values[len(values) // 2]:.1f} ms, "
          f"spread (p90/p10) {values[int(len(values) * 0.9)] / values[int(len(values) * 0.1)]:.3f}\n")
    rng = random.Random(args.seed)
    print("| gate | candidate | trials | fail | pass | inconclusive | boots a side (median) |")
    print("|---|---|---|---|---|---|---|")
    for label, n, max_n in (("fixed", args.n, args.n), ("sequential", args.n, args.max_n)):
        if 2 * max_n > len(pool):
            print(f"| {label} | (pool too small for {max_n} + {max_n}) |")
            continue
        for what, factor in (("A/A (same)", 1.0), ("+10% slower", 1.10)):
            verdicts, boots = Counter(), []
            for _ in range(args.trials):
                verdict, used = one_gate(pool, rng, n, max_n, args.phase, factor)
                verdicts[verdict] += 1
                boots.append(used)
            boots.sort()
            print(f"| {label} n={n}{f'..{max_n}' if max_n > n else ''} | {what} | {args.trials} | "
                  f"{verdicts[gate.FAIL]} ({verdicts[gate.FAIL] / args.trials:.1%}) | {verdicts[gate.PASS]} | "
                  f"{verdicts[gate.INCONCLUSIVE]} | {boots[len(boots) // 2]} |")


if __name__ == "__main__":
    main()
