"""Sampled kernel profiles: symbolization, collapsed stacks, flamegraphs.

Two sources produce the same samples, `TSC IP [RET ...]` (hex addresses, return
addresses innermost first):
- Redox-style kernel profiles, with the CPU's GHz to turn TSC into time;
- our host-side sampler (boot/sampler.py), which stops the vCPU through QEMU's gdbstub
  and reads its instruction pointer; its "TSC" is host nanoseconds (GHz = 1).
Symbols come from `nm -CS` (address, size, type, name) or a System.map (no sizes: a
symbol then runs to the next one).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from appliance.analysis.spans import Span

KERNEL_MAP = 0xFFFFFFFF80000000  # x86-64 __START_KERNEL_map: early code runs at physical = virtual - this
_NM = re.compile(r"^([0-9a-fA-F]+)(?:\s+([0-9a-fA-F]+))?\s+(\S)\s+(.+)$")
_TEXT_TYPES = set("TtWwVv")


@dataclass(frozen=True)
class Symbols:
    starts: list[int]
    ends: list[int | None]  # None: up to the next symbol
    names: list[str]

    def lookup(self, address: int) -> str | None:
        i = bisect.bisect_right(self.starts, address) - 1
        if i < 0:
            return None
        end = self.ends[i]
        if end is None:
            end = self.starts[i + 1] if i + 1 < len(self.starts) else self.starts[i] + 0x100000
        return self.names[i] if address < end else None


def parse_symbols(text: str) -> tuple[Symbols, list[str]]:
    """Code symbols from `nm -CS` or System.map text, and problems with line numbers."""
    found: dict[int, tuple[int | None, str]] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _NM.match(line)
        if m is None:
            if not line.endswith(":") and " U " not in f" {line} ":  # nm's file headers and undefined symbols
                problems.append(f"line {number}: not an nm/System.map line: {line[:80]!r}")
            continue
        if m[3] not in _TEXT_TYPES:
            continue
        start = int(m[1], 16)
        size = int(m[2], 16) if m[2] else None
        if start not in found or (found[start][0] is None and size is not None):
            found[start] = (start + size if size else None, m[4].strip())
    starts = sorted(found)
    return Symbols(starts, [found[s][0] for s in starts], [found[s][1] for s in starts]), problems


def symbolize(symbols: Symbols, address: int) -> str:
    name = symbols.lookup(address)
    if name is not None:
        return name
    if address < KERNEL_MAP and (early := symbols.lookup(address + KERNEL_MAP)) is not None:
        return f"{early} (phys)"  # before paging maps the kernel high (PVH entry, decompressor)
    if address < 0x0000_8000_0000_0000:
        return "[user]" if address >= 0x400000 else "[low memory]"
    return "[unknown]"


@dataclass(frozen=True)
class Sample:
    tsc: int
    ip: int
    returns: tuple[int, ...] = ()  # innermost caller first


def parse_samples(text: str) -> tuple[list[Sample], list[str]]:
    """Lines `TSC IP [RET ...]` (TSC decimal, addresses hex with or without 0x)."""
    samples, problems = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            tsc = int(fields[0])
            addresses = [int(f, 16) for f in fields[1:]]
        except ValueError:
            problems.append(f"line {number}: not a sample (TSC IP [RET ...]): {raw.strip()[:80]!r}")
            continue
        if not addresses or tsc < 0:
            problems.append(f"line {number}: a sample needs a TSC and an instruction pointer")
            continue
        samples.append(Sample(tsc, addresses[0], tuple(addresses[1:])))
    return samples, problems


def stack_of(sample: Sample, symbols: Symbols, root: str = "kernel") -> tuple[str, ...]:
    """Root first, the sampled function last (callers from the return addresses)."""
    callers = tuple(symbolize(symbols, a) for a in reversed(sample.returns))
    return (root, *callers, symbolize(symbols, sample.ip))


def collapsed(samples: list[Sample], symbols: Symbols, root: str = "kernel") -> list[str]:
    """Collapsed stacks weighted by sample count, heaviest first."""
    counts: dict[str, int] = {}
    for sample in samples:
        key = ";".join(s.replace(";", ":") for s in stack_of(sample, symbols, root))
        counts[key] = counts.get(key, 0) + 1
    return [f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def counted(hits: dict[int, int], symbols: Symbols, root: str = "kernel") -> dict[str, int]:
    """The instruction clock's samples (guest PC -> hits) as collapsed stacks -> hits."""
    out: dict[str, int] = {}
    for pc, count in hits.items():
        key = ";".join(s.replace(";", ":") for s in stack_of(Sample(0, pc), symbols, root))
        out[key] = out.get(key, 0) + count
    return out


def diff(a: dict[str, int], b: dict[str, int]) -> list[tuple[str, int, int]]:
    """Per function (a stack's leaf): its hits in A and in B, the largest change first."""
    def leaves(stacks: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for stack, hits in stacks.items():
            leaf = stack.rsplit(";", 1)[-1]
            out[leaf] = out.get(leaf, 0) + hits
        return out

    la, lb = leaves(a), leaves(b)
    rows = [(name, la.get(name, 0), lb.get(name, 0)) for name in set(la) | set(lb)]
    return sorted(rows, key=lambda r: (-abs(r[2] - r[1]), r[0]))


def diff_table(rows: list[tuple[str, int, int]], every: int, top: int) -> str:
    lines = [f"{'A (M insns)':>12} {'B (M insns)':>12} {'change':>12}  function"]
    for name, a, b in rows[:top]:
        lines.append(f"{a * every / 1e6:12.2f} {b * every / 1e6:12.2f} {(b - a) * every / 1e6:+12.2f}  {name}")
    total_a, total_b = sum(r[1] for r in rows), sum(r[2] for r in rows)
    lines.append(f"{total_a * every / 1e6:12.2f} {total_b * every / 1e6:12.2f} {(total_b - total_a) * every / 1e6:+12.2f}"
                 "  (all samples)")
    return "\n".join(lines)


def flamegraph_spans(lines: list[str], unit_us: float = 1.0, track: str = "profile") -> list[Span]:
    """Collapsed stacks laid out as a flamegraph (merged, alphabetical; width = weight):
    drawn by flame.render, its x axis is then "samples x UNIT_US", not time."""
    weights: dict[tuple[str, ...], float] = {}
    for line in lines:
        path, _, count = line.rpartition(" ")
        stack = tuple(path.split(";"))
        for depth in range(1, len(stack) + 1):
            weights[stack[:depth]] = weights.get(stack[:depth], 0.0) + float(count) * unit_us
    spans: list[Span] = []
    cursor: dict[tuple[str, ...], float] = {(): 0.0}
    for stack in sorted(weights):  # parents sort before their children
        start = cursor.get(stack[:-1], 0.0)
        spans.append(Span(track, stack, start, start + weights[stack], "sample"))
        cursor[stack[:-1]] = start + weights[stack]
        cursor[stack] = start
    return spans


def timeline_spans(samples: list[Sample], symbols: Symbols, hz: float, root: str = "kernel",
                   track: str = "profile") -> list[Span]:
    """The samples in time order as a flamechart: a frame lasts from the first sample
    that has it on the stack until the first one that does not (or the last sample,
    plus one median interval)."""
    if not samples:
        return []
    ordered = sorted(samples, key=lambda s: s.tsc)
    t0 = ordered[0].tsc

    def us(tsc: int) -> float:
        return (tsc - t0) * 1e6 / hz

    gaps = sorted(b.tsc - a.tsc for a, b in zip(ordered, ordered[1:], strict=False)) or [0]
    end = us(ordered[-1].tsc + gaps[len(gaps) // 2])
    spans: list[Span] = []
    open_: list[tuple[tuple[str, ...], float]] = []
    for sample in ordered:
        stack = stack_of(sample, symbols, root)
        keep = 0
        while keep < len(open_) and keep < len(stack) and open_[keep][0] == stack[:keep + 1]:
            keep += 1
        t = us(sample.tsc)
        for frame, start in reversed(open_[keep:]):
            spans.append(Span(track, frame, start, t, "sample"))
        open_ = open_[:keep] + [(stack[:d + 1], t) for d in range(keep, len(stack))]
    for frame, start in reversed(open_):
        spans.append(Span(track, frame, start, end, "sample"))
    return spans
