"""Linux `initcall_debug` output: every initcall with its start and duration, and their
statistics across boots.

With `initcall_debug printk.time=1` the kernel logs, for each initcall,
    [    0.185585] calling  con_init+0x0/0x22c @ 1
    [    0.187716] initcall con_init+0x0/0x22c returned 0 after 0 usecs
and for a module's init function the same with ` [module]` after the symbol. Times are
the guest's printk clock (seconds since its clock started, after decompression). A
kernel without kallsyms prints the address instead of `FN+0x0/0x..`; `symbolize()`
names those from a System.map.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

_STAMP = re.compile(r"^\[\s*(\d+)\.(\d+)\] (.*)$")
# FN+0x0/0x22c, or a bare address when the kernel has no kallsyms (the minimal kernel)
_SYMBOL = r"(?P<fn>[^\s+]+)(?:\+0x[0-9a-f]+/(?P<size>0x[0-9a-f]+))?(?: \[(?P<mod>[^\]\s]+)\])?"
_CALLING = re.compile(rf"^calling  {_SYMBOL} @ (?P<pid>\d+)\s*$")
_RETURNED = re.compile(rf"^initcall {_SYMBOL} returned (?P<ret>-?\d+) after (?P<n>\d+) (?P<unit>usecs|msecs)\s*$")


@dataclass(frozen=True)
class Initcall:
    name: str  # the function
    module: str | None  # the module it belongs to, None when built in
    start_us: float  # guest printk time of its `calling` line
    duration_us: float
    ret: int
    pid: int  # 1 for built-ins run by kernel_init (0: console initcalls, inside start_kernel); the loader's for modules
    line: int
    size: str | None = None  # the function's size (`+0x0/0x22c`): two functions may share a name
    end_us: float | None = None  # guest printk time of its `returned` line
    ident: str = ""  # what tells it from another initcall of the same name in the boot (its size, or #2)
    jiffy_us: float = 1000.0  # the tick of the log's coarse durations (decided from the log: jiffy_of)

    @property
    def key(self) -> str:
        base = f"{self.name} [{self.module}]" if self.module else self.name
        return f"{base} ({self.ident})" if self.ident else base

    @property
    def coarse(self) -> bool:
        """Whether the kernel's "after N usecs" is not to be drawn: longer than the time
        between its own printk lines (impossible, so from a coarser clock), or a whole
        number of the log's jiffy ticks (before the clocksource switch the kernel's clock
        is jiffies: 0, 1000, 976 us on a 1024 Hz tick) that the printk times contradict
        by half a tick or more."""
        if self.end_us is None:
            return False
        gap = self.end_us - self.start_us
        if self.duration_us > gap + PRINTK_SLACK_US:
            return True
        return _ticks(self.duration_us, self.jiffy_us) and abs(gap - self.duration_us) >= self.jiffy_us / 2

    @property
    def placed_us(self) -> float:
        """How long to draw it: the printk times' span where the duration is jiffy-coarse."""
        return self.end_us - self.start_us if self.coarse and self.end_us is not None else self.duration_us


PRINTK_SLACK_US = 50  # a duration may exceed its printk gap by this much (the stamps' own rounding)
# the ticks a kernel's jiffy-based durations come in (HZ 1000, 1024 refined jiffies, 250, 300, 100)
JIFFY_TICKS_US = (1000.0, 1e6 / 1024, 4000.0, 1e6 / 300, 10000.0)


def _ticks(duration_us: float, tick_us: float) -> bool:
    """Whether DURATION_US is a whole number of ticks, as the kernel prints it (in whole us)."""
    count = round(duration_us / tick_us)
    return abs(duration_us - count * tick_us) <= 1.0 and (count >= 1 or duration_us == 0)


def jiffy_of(calls: list[Initcall]) -> float:
    """The tick of a log's coarse durations: the candidate that explains the most
    durations which are whole ticks and disagree with their printk gap (1000 us if none)."""
    def disagreeing(tick: float) -> int:
        return sum(1 for c in calls if c.end_us is not None and c.duration_us > 0 and _ticks(c.duration_us, tick)
                   and abs((c.end_us - c.start_us) - c.duration_us) >= tick / 2)
    return max(JIFFY_TICKS_US, key=lambda tick: (disagreeing(tick), tick == 1000.0))


def staged(calls: list[Initcall]) -> list[Initcall]:
    """The initcall stage: the built-ins kernel_init runs (`@ 1` on). Console initcalls
    (`@ 0`) run earlier, inside start_kernel; modules' run later, from the init."""
    return [c for c in calls if c.module is None and c.pid != 0]


def stage_span(calls: list[Initcall]) -> tuple[float, float] | None:
    """Where the stage runs in printk time (us): its first call to its last return."""
    stage = staged(calls)
    if not stage:
        return None
    return stage[0].start_us, max(c.start_us + c.placed_us for c in stage)


@dataclass
class Parsed:
    initcalls: list[Initcall]
    problems: list[str] = field(default_factory=list)  # "line N: why"
    unfinished: list[str] = field(default_factory=list)  # called and never returned (hang, panic)
    hung: list[Initcall] = field(default_factory=list)  # those calls: where they started (duration 0)
    console_chars: int = 0  # everything the kernel printed, the cost of the measurement itself
    lines: int = 0


def parse(text: str) -> Parsed:
    """Initcalls of one boot's console TEXT (other lines are skipped, malformed initcall
    lines reported with their number)."""
    out = Parsed([], console_chars=len(text))
    pending: dict[tuple[str, str | None], tuple[float, int, int]] = {}  # -> (start, pid, line)
    for number, raw in enumerate(text.splitlines(), 1):
        out.lines = number
        line = raw.rstrip("\r")
        stamp = _STAMP.match(line)
        body = stamp[3] if stamp else line
        if not (body.startswith("calling ") or body.startswith("initcall ")):
            continue
        if stamp is None:
            out.problems.append(f"line {number}: initcall line without a printk time (boot with printk.time=1)")
            continue
        t_us = int(stamp[1]) * 1e6 + int(stamp[2].ljust(6, "0")[:6])
        if (m := _CALLING.match(body)) is not None:
            pending[(m["fn"], m["mod"])] = (t_us, int(m["pid"]), number)
        elif (m := _RETURNED.match(body)) is not None:
            start = pending.pop((m["fn"], m["mod"]), None)
            duration = int(m["n"]) * (1000 if m["unit"] == "msecs" else 1)
            if start is None:
                out.problems.append(f"line {number}: {m['fn']} returned without a `calling` line")
                start = (t_us - duration, 1, number)
            out.initcalls.append(Initcall(m["fn"], m["mod"], start[0], float(duration), int(m["ret"]), start[1],
                                          start[2], m["size"], t_us))
        else:
            out.problems.append(f"line {number}: not an initcall_debug line: {body[:80]!r}")
    out.unfinished = [f"{fn} [{mod}]" if mod else fn for fn, mod in pending]
    out.hung = [Initcall(fn, mod, start, 0.0, 0, pid, line) for (fn, mod), (start, pid, line) in pending.items()]
    tick = jiffy_of(out.initcalls)
    out.initcalls = tell_apart(sorted((replace(c, jiffy_us=tick) for c in out.initcalls),
                                      key=lambda c: (c.start_us, c.line)))
    return out


def tell_apart(calls: list[Initcall]) -> list[Initcall]:
    """Initcalls that share a name in one boot are different functions (Debian's kernel
    has two xenbus_init): name each by its size where the sizes differ, else by order."""
    by_name: dict[tuple[str, str | None], list[int]] = {}
    for index, call in enumerate(calls):
        by_name.setdefault((call.name, call.module), []).append(index)
    out = list(calls)
    for indices in by_name.values():
        if len(indices) < 2:
            continue
        sizes = [calls[i].size for i in indices]
        by_size = None not in sizes and len(set(sizes)) == len(sizes)
        for order, i in enumerate(indices, 1):
            out[i] = replace(calls[i], ident=str(calls[i].size) if by_size else f"#{order}")
    return out


# Linux's boot-time tracing of the same events (`trace_event=initcall:*`), read from the
# ftrace buffer: `TASK-PID [CPU] FLAGS SECS.USECS: initcall_start: func=FN+0x0/0x22c`,
# then `initcall_finish: func=FN+0x0/0x22c ret=0`. The trace clock (local) is the one
# printk stamps with, so both sources share one time axis. Nothing reaches the console.
# trace_clock=global: a boot clock of its own, else the kernel switches the trace clock at
# late_initcall time when the TSC was found unstable (a busy host), which empties the buffer
TRACE_CMDLINE = "trace_event=initcall:initcall_start,initcall:initcall_finish trace_buf_size=2M trace_clock=global"
_TRACED = re.compile(rf"^\s*.+?-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[\d+\]\s+(?:\S+\s+)?(?P<s>\d+)\.(?P<us>\d+):"
                     rf"\s+(?P<event>initcall_start|initcall_finish):\s+func={_SYMBOL}(?:\s+ret=(?P<ret>-?\d+))?\s*$")


def parse_trace(text: str) -> Parsed:
    """Initcalls from an ftrace buffer's TEXT (see TRACE_CMDLINE); other lines, and the
    buffer's `#` header, are skipped."""
    out = Parsed([], console_chars=0)
    pending: dict[tuple[str, str | None], tuple[float, int, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        out.lines = number
        m = _TRACED.match(line)
        if m is None:
            if "initcall_" in line and not line.lstrip().startswith("#"):
                out.problems.append(f"line {number}: not an initcall trace line: {line.strip()[:80]!r}")
            continue
        t_us = int(m["s"]) * 1e6 + int(m["us"].ljust(6, "0")[:6])
        key = (m["fn"], m["mod"])
        if m["event"] == "initcall_start":
            pending[key] = (t_us, int(m["pid"]), number)
            continue
        start = pending.pop(key, None)
        if start is None:
            out.problems.append(f"line {number}: {m['fn']} finished without initcall_start (buffer wrapped?)")
            continue
        out.initcalls.append(Initcall(m["fn"], m["mod"], start[0], t_us - start[0], int(m["ret"] or 0), start[1],
                                      start[2], m["size"], t_us))
    out.unfinished = [f"{fn} [{mod}]" if mod else fn for fn, mod in pending]
    out.hung = [Initcall(fn, mod, start, 0.0, 0, pid, line) for (fn, mod), (start, pid, line) in pending.items()]
    out.initcalls = tell_apart(sorted(out.initcalls, key=lambda c: (c.start_us, c.line)))
    return out


@dataclass(frozen=True)
class Stat:
    key: str
    module: str | None
    n: int
    mean_us: float
    stddev_us: float
    median_us: float
    share: float  # of the median kernel phase (mean / kernel), 0..1
    failed: int  # boots in which it returned non-zero


def aggregate(boots: Iterable[list[Initcall]], kernel_ms: float) -> list[Stat]:
    """Per initcall across boots, longest mean first; SHARE against KERNEL_MS (the median
    kernel phase of the same boots)."""
    durations: dict[str, list[float]] = {}
    modules: dict[str, str | None] = {}
    failures: dict[str, int] = {}
    for calls in boots:
        for call in calls:
            durations.setdefault(call.key, []).append(call.duration_us)
            modules[call.key] = call.module
            failures[call.key] = failures.get(call.key, 0) + (call.ret != 0)
    stats = []
    for key, values in durations.items():
        mean = statistics.fmean(values)
        stats.append(Stat(key, modules[key], len(values), mean, statistics.stdev(values) if len(values) > 1 else 0.0,
                          statistics.median(values), mean / (kernel_ms * 1000) if kernel_ms > 0 else 0.0,
                          failures[key]))
    return sorted(stats, key=lambda s: (-s.mean_us, s.key))


def symbolize(calls: list[Initcall], name_of: Callable[[int], str | None]) -> list[Initcall]:
    """CALLS with bare-address names (`0xffffffff818c7b0d`) replaced by NAME_OF's answer."""
    out = []
    for call in calls:
        if call.name.startswith("0x"):
            try:
                name = name_of(int(call.name, 16))
            except ValueError:
                name = None
            call = replace(call, name=name) if name else call
        out.append(call)
    return out
