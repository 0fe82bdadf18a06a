"""Benchmark: what each source of initcall times costs, and whether the two agree.

Three kinds of boots of the `profiled` appliance (Debian kernel, microvm), interleaved:
plain; initcall_debug on a verbose console (the classic way: analyze's console source
without profiled); and the ftrace source (trace_event=initcall:*, read by profiled after
payload_end). Each source's cost is its kernel phase against the plain boots' (ratio of
medians with its bootstrap interval); agreement is per initcall, mean duration from each
source over its boots, and the rank of the top 10.

    .venv/bin/python benchmarks/initcall_sources.py [-n 8]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc, results  # noqa: E402
from appliance.analysis import analyze, initcalls  # noqa: E402
from appliance.boot import accel  # noqa: E402
from appliance.runs import compare  # noqa: E402
from appliance.runs.bench import Plan, Session, interleave  # noqa: E402
from appliance.stats import ratio_ci  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402

SOURCES = {"plain": "", "console": analyze.DEBUG_CMDLINE, "ftrace": analyze.TRACE_CMDLINE}


def kernel_ms(session: Session) -> list[float]:
    return [r["phases_ms"]["kernel"] for r in results.counted(session.runs) if r["phases_ms"].get("kernel")]


def mean_durations(parsed: list[initcalls.Parsed]) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for p in parsed:
        for c in p.initcalls:
            if c.module is None:
                values.setdefault(c.key, []).append(c.duration_us / 1000)
    return {k: statistics.fmean(v) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()
    build = Path(tempfile.mkdtemp(prefix="appliance-bench-"))
    scons = SCONS
    proc.run([scons, "-Q", "appliance", "TEMPLATE=profiled", f"BUILD_DIR={build}"], cwd=ROOT)
    choice = accel.choose("tcg")
    target = bundle.load(build / "profiled")
    sessions = {name: Session(target, choice, Plan(n=args.n, warmup=1, timeout=300, extra_cmdline=cmdline,
                                                         keep_consoles=True))
                for name, cmdline in SOURCES.items()}
    interleave(list(sessions.values()), 1, args.n, progress=None)
    shutil.rmtree(build, ignore_errors=True)

    plain = kernel_ms(sessions["plain"])
    print(f"## Initcall sources: cost and agreement ({args.n} boots each, interleaved, Debian kernel, microvm, TCG)\n")
    print("| source | kernel phase median ms | against plain | 95% CI | console bytes (median) |")
    print("|---|---|---|---|---|")
    for name, session in sessions.items():
        values = kernel_ms(session)
        ci = ratio_ci(plain, values, 0.95) if name != "plain" else None
        chars = statistics.median(len(c) for c in session.consoles if c) if any(session.consoles) else 0
        ratio = statistics.median(values) / statistics.median(plain)
        print(f"| {name} | {statistics.median(values):.1f} | {(ratio - 1) * 100:+.2f}% | "
              f"{f'{(ci[0] - 1) * 100:+.2f}% to {(ci[1] - 1) * 100:+.2f}%' if ci else '-'} | {chars:.0f} |")
    for name in ("console", "ftrace"):
        result = compare.compare(sessions["plain"].runs, sessions[name].runs, primary="kernel")
        row = next(r for r in result["rows"] if r["phase"] == "kernel")
        print(f"\n- {name} vs plain, kernel phase (compare, primary): ratio {row['ratio']:.4f}, "
              f"p {row['p_value']:.4f}; verdict: {row['verdict'] or 'no difference called'}")

    counted = {name: [(r, c) for r, c in zip(s.runs, s.consoles, strict=True) if r["ok"] and not r["warmup"]]
               for name, s in sessions.items()}
    console = mean_durations([initcalls.parse(c) for _, c in counted["console"]])  # the console itself
    traced = mean_durations([initcalls.parse_trace(analyze.trace_text(r)) for r, _ in counted["ftrace"]])
    top_console = sorted(console, key=lambda k: -console[k])[:10]
    top_traced = sorted(traced, key=lambda k: -traced[k])[:10]
    both = set(console) & set(traced)
    print(f"\n- initcalls seen: console {len(console)}, ftrace {len(traced)}, in both {len(both)}; "
          f"top 10 the same and in the same order: {top_console == top_traced}; "
          f"same set: {set(top_console) == set(top_traced)}")
    print("\n| rank | console | ms | ftrace | ms |")
    print("|---|---|---|---|---|")
    for i, (a, b) in enumerate(zip(top_console, top_traced, strict=True), 1):
        print(f"| {i} | {a} | {console[a]:.2f} | {b} | {traced[b]:.2f} |")


if __name__ == "__main__":
    main()
