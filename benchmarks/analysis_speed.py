"""Benchmark: parse + render time of the analysis pipeline on large inputs.

- a 100,000-record tslog dump (4 threads, nested calls up to depth 8, waits, a few
  backwards TSC steps): parse, build spans, render the SVG flamechart and collapsed stacks;
- a 5,000-initcall initcall_debug console (plus the other lines a kernel prints):
  parse, aggregate, lay out the boot's spans, render the SVG flamechart.
Generated with a fixed seed, timed in-process, median of --repeat runs.

    .venv/bin/python benchmarks/analysis_speed.py --repeat 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.analysis import bootspans, exports, flame, initcalls, spans, tslog  # noqa: E402


def make_tslog(records: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    threads = ["0xfffff80003a1e000", "0xfffff80003c2b000", "0xfffff80003d3c000", "0xfffff80003e4d000"]
    stacks: dict[str, list[str]] = {t: [] for t in threads}
    lines = [f"{threads[0]} 1000000 ENTER mi_startup"]
    stacks[threads[0]].append("mi_startup")
    for t in threads[1:]:
        lines.append(f"{t} 1000100 THREAD worker{t[-5:-3]}")
    tsc = 1_001_000
    while len(lines) < records:
        td = rng.choice(threads)
        tsc += rng.randint(100, 20_000)
        if rng.random() < 0.0005:  # another CPU's counter, a little behind
            tsc -= rng.randint(1_000, 50_000)
        stack = stacks[td]
        if stack and (len(stack) >= 8 or rng.random() < 0.45) and stack[-1] != "mi_startup":
            lines.append(f"{td} {tsc} EXIT {stack.pop()}")
        elif rng.random() < 0.01:
            lines.append(f"{td} {tsc} EVENT {rng.choice(['HOLD', 'RELEASE'])} topic{rng.randint(0, 3)}")
        else:
            name = f"func_{rng.randint(0, 400)}"
            stack.append(name)
            lines.append(f"{td} {tsc} ENTER {name}")
    return "\n".join(lines[:records]) + "\n"


def make_initcall_console(count: int, seed: int = 2) -> str:
    rng = random.Random(seed)
    t = 0.17
    lines = ["[    0.000000] Linux version 6.1.0 (bench)"]
    for i in range(count):
        fn = f"subsys{i}_init"
        lines.append(f"[{t:12.6f}] calling  {fn}+0x0/0x{rng.randint(16, 999):x} @ 1")
        if rng.random() < 0.3:
            lines.append(f"[{t:12.6f}] some driver: probing something {i}")
        duration = rng.choice([0, 1, 3, 12, 40, 250, 1800])
        t += duration / 1e6 + 2e-6
        lines.append(f"[{t:12.6f}] initcall {fn}+0x0/0x10 returned 0 after {duration} usecs")
    lines.append(f"[{t + 0.01:12.6f}] Run /init as init process")
    return "\n".join(lines) + "\n"


def time_tslog(text: str) -> tuple[float, int]:
    started = time.perf_counter()
    prof = tslog.timeline(text, 2.6e9)
    svg = flame.render(prof.spans, "bench", prof.total_us)
    spans.collapsed(prof.spans)
    return time.perf_counter() - started, len(svg)


def time_initcalls(text: str) -> tuple[float, int]:
    started = time.perf_counter()
    parsed = initcalls.parse(text)
    initcalls.aggregate([parsed.initcalls], 4600.0)
    end_ms = (parsed.initcalls[-1].start_us + parsed.initcalls[-1].duration_us) / 1000 + 100
    run = {"events": [{"name": "qemu_exec", "t_ms": 0.0}, {"name": "kernel_entry", "t_ms": 40.0},
                      {"name": "init_start", "t_ms": end_ms + 50}, {"name": "qemu_exit", "t_ms": end_ms + 90}]}
    items = bootspans.boot_spans(run, text, parsed.initcalls)
    flame.render(items, "bench")
    exports.chrome_trace(items)
    return time.perf_counter() - started, len(parsed.initcalls)


def make_deep(depth: int) -> str:
    """DEPTH nested ENTERs that never EXIT (a dump that lost its EXIT records)."""
    return "\n".join(["0x1 1 ENTER mi_startup"] + [f"0x1 {10 + i} ENTER f{i}" for i in range(depth)]) + "\n"


def time_deep(depth: int) -> tuple[float, int]:
    """Seconds and peak traced memory (bytes) of parse + SVG + collapsed for make_deep(DEPTH)."""
    text = make_deep(depth)
    tracemalloc.start()
    started = time.perf_counter()
    prof = tslog.timeline(text, 1e9)
    flame.render(prof.spans, "deep", prof.total_us)
    spans.collapsed(prof.spans)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    dump = make_tslog(100_000)
    console = make_initcall_console(5_000)
    tslog_times = [time_tslog(dump)[0] for _ in range(args.repeat)]
    initcall_times, found = [], 0
    for _ in range(args.repeat):
        seconds, found = time_initcalls(console)
        initcall_times.append(seconds)
    print(f"median of {args.repeat} runs, in-process\n")
    print("| input | size | parse + render median s | min s | max s | goal |")
    print("|---|---:|---:|---:|---:|---|")
    for name, size, times in (("tslog, 100,000 records", f"{len(dump):,} B", tslog_times),
                              (f"initcall_debug, {found:,} initcalls", f"{len(console):,} B", initcall_times)):
        median = statistics.median(times)
        print(f"| {name} | {size} | {median:.2f} | {min(times):.2f} | {max(times):.2f} | "
              f"{'met' if median < 2 else 'MISSED'} (< 2 s) |")
    print("\nunclosed nesting (linear, not quadratic, in the depth):\n")
    print("| unclosed ENTERs | parse + render s | peak memory MiB |")
    print("|---:|---:|---:|")
    for depth in (10_000, 20_000, 40_000):
        seconds, peak = time_deep(depth)
        print(f"| {depth:,} | {seconds:.2f} | {peak / 2**20:.1f} |")


if __name__ == "__main__":
    main()
