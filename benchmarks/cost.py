"""Benchmark: does `appliance inspect --cost` account for what an appliance adds to the
init-only lower bound?

For `python` (35 MB of packages in the initramfs) and `python-erofs` (the packages on an
EROFS root), the cost boots (the bundle, it with a boot-only initrd, it with
initcall_debug) are interleaved, in one random balanced order per round, with boots of
`minimal` (the init alone: the lower bound). The measured difference is the bundle's
launch -> payload_start minus minimal's launch -> init_start (per round, the median), on
the host's clock and on the guest's; the table's total should come within 10% of it.
inspect --cost also measures its own bound (the bundle's init alone, on its kernel);
every figure is printed.

    .venv/bin/python benchmarks/cost.py -n 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import results  # noqa: E402
from appliance.analysis import cost  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.runs import costboots  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from benchmarks.common import at, build_bundle  # noqa: E402

PRICED = ("python", "python-erofs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    choice = accel.choose("tcg")
    bound = Session(build_bundle("minimal"), choice, Plan(n=args.n, warmup=1))
    bundles = {name: build_bundle(name) for name in PRICED}
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        boots = {name: costboots.prepare(b, choice, args.n, Path(tmp), cost.debug_words(), cost.boot_paths(b.contents),
                                         cost.init_paths(b.contents)) for name, b in bundles.items()}
        interleave([bound, *(s for b in boots.values() for s in b.sessions)], 1, args.n, progress=None)
    lower = statistics.median(r["phases_ms"]["to_init"] for r in results.counted(bound.runs))
    print(f"accel {choice.accel}; n = {args.n} rounds, each booting every session once in a random order, after "
          f"1 warm-up; the lower bound (minimal, launch -> init_start): {lower:.1f} ms\n")
    rows = []
    for name, bundle in bundles.items():
        table = cost.of_boots(bundle, *boots[name].counted()).to_dict()
        plain = results.counted(boots[name].plain.runs)
        host = host_paired(plain, results.counted(bound.runs))
        guest = cost.paired(plain, "payload_start", results.counted(bound.runs))
        rows.append((name, host, guest, table))
        print(f"## {name}\n\n```\n{cost.text(table, top=8)}\n```\n")
    print("Over `minimal` (the init alone, its own bundle), per round, median: host clock = launch -> payload_start "
          "minus launch -> init_start; guest clock = the same probes on the guest's CLOCK_BOOTTIME.\n")
    print("| bundle | over `minimal`, host clock | over `minimal`, guest clock | over its own init alone (the "
          "table's measure) | cost table total | table / guest over `minimal` | table / its own measure |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, host, guest, table in rows:
        own = table["measured_ms"]
        print(f"| {name} | {host:.1f} | {guest:.1f} | {own:.1f} | {table['total_ms']:.1f} | "
              f"{table['total_ms'] / guest:.3f} | {table['total_ms'] / own:.3f} |")
    print("\ngoal: the table's total within 10% of the measured difference")


def host_paired(runs: list[dict], bound: list[dict]) -> float:
    """Median over rounds of a run's launch -> payload_start minus the bound's launch -> init_start."""
    lows = {r["round"]: at(r, "init_start") for r in bound}
    return statistics.median(t - lows[r["round"]] for r in runs
                             if (t := at(r, "payload_start")) is not None and lows.get(r["round"]) is not None)


if __name__ == "__main__":
    main()
