"""The common form of "where the time went": nested, time-ordered spans on tracks.

Every analysis (initcalls, tslog, profiles) produces spans; every output (collapsed
stacks, the SVG flamechart, Chrome Trace JSON, speedscope) consumes them. A span's
`stack` is its path from the track's root to itself, so nesting needs no search.
Times are microseconds from an origin the producer states (QEMU's exec for a boot).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    track: str  # "boot", a thread name, ...: one flamechart band, one trace track
    stack: tuple[str, ...]  # root first, this span's name last
    start_us: float
    end_us: float
    kind: str = ""  # phase, initcall, module, function, wait, sample: colour and category
    note: str = ""  # extra text for tooltips and trace args

    @property
    def name(self) -> str:
        return self.stack[-1]

    @property
    def depth(self) -> int:
        return len(self.stack) - 1

    @property
    def duration_us(self) -> float:
        return self.end_us - self.start_us


def ordered(spans: Iterable[Span]) -> list[Span]:
    """Spans by track, then start, parents before their children."""
    return sorted(spans, key=lambda s: (s.track, s.start_us, s.depth, -s.end_us))


def self_times(spans: Iterable[Span]) -> dict[tuple[str, tuple[str, ...]], float]:
    """(track, stack) -> time spent in the span itself, not in its children (us). A
    child is found by its stack (its parent is the latest span of the stack one shorter
    that holds it), not by the order of starts: a zero-length sibling that starts with
    its parent (the kernel's "early boot" without a printk clock) hid the parent from its
    children, and their time was counted twice."""
    totals: dict[tuple[str, tuple[str, ...]], float] = {}
    latest: dict[tuple[str, tuple[str, ...]], Span] = {}
    for span in ordered(spans):
        key = (span.track, span.stack)
        totals[key] = totals.get(key, 0.0) + span.duration_us
        parent = latest.get((span.track, span.stack[:-1])) if span.depth else None
        if parent is not None and parent.start_us <= span.start_us and span.end_us <= parent.end_us + 1e-6:
            totals[(parent.track, parent.stack)] -= span.duration_us
        latest[key] = span
    return totals


def collapsed(spans: Iterable[Span], prefix_track: bool = False) -> list[str]:
    """Collapsed stacks (`a;b;c N`, N in whole microseconds) for flamegraph.pl/inferno,
    heaviest first; stacks under 1 us are left out."""
    weights: dict[str, float] = {}
    for (track, stack), us in self_times(spans).items():
        path = ";".join(((track,) if prefix_track else ()) + tuple(s.replace(";", ":") for s in stack))
        weights[path] = weights.get(path, 0.0) + us
    lines = [(path, round(us)) for path, us in weights.items() if round(us) >= 1]
    return [f"{path} {us}" for path, us in sorted(lines, key=lambda x: (-x[1], x[0]))]


def problems(spans: Iterable[Span]) -> list[str]:
    """What makes spans unfit to draw: negative durations, children outside their parent."""
    found = []
    chain: list[Span] = []
    for span in ordered(spans):
        if span.end_us < span.start_us:
            found.append(f"{span.track}: {span.name} ends before it starts")
        while chain and (chain[-1].track != span.track or chain[-1].depth >= span.depth):
            chain.pop()
        if chain and span.stack[:-1] == chain[-1].stack and span.end_us > chain[-1].end_us + 1e-6:
            found.append(f"{span.track}: {span.name} outlasts its parent {chain[-1].name}")
        chain.append(span)
    return found
