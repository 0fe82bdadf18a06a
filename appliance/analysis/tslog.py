"""FreeBSD/NetBSD tslog dumps (`sysctl -b debug.tslog`) into spans: a boot timeline per thread.

A dump is lines `TD TSC TYPE [NAME [ARG]]`: TD a thread pointer in hex, TSC a cycle
count, TYPE one of ENTER/EXIT (a function on that thread), THREAD (the thread starts,
NAME its name) or EVENT (NAME is HOLD/RELEASE/WAIT/UNWAIT, ARG the topic waited for).

What the parser repairs, and says it repaired:
- TSC going backwards between records (CPUs whose counters disagree): later records are
  shifted so time never runs backwards in record order.
- An EXIT whose ENTER came before the dump began: the frame starts at the thread's
  first record.
- A truncated dump (the kernel's buffer filled, or the copy was cut): frames still open
  at the end are closed there and marked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.analysis.spans import Span

MAIN_FUNCTIONS = ("mi_startup", "main")  # FreeBSD's and NetBSD's machine-independent kernel main
DEFAULT_BUFFER = 262144  # FreeBSD's default TSLOGSIZE: a dump this long most likely filled it

# ARG is the whole rest of the record: FreeBSD's TSENTER2 frames are named by it too
# (`config_attach_internal mainbus` and `... ioapic` are different frames)
_LINE = re.compile(r"^(0x[0-9a-fA-F]+|[0-9a-fA-F]+) (\d+) (ENTER|EXIT|THREAD|EVENT)(?: (\S+)(?: (.+?))?)?$")
_EVENTS = ("HOLD", "RELEASE", "WAIT", "UNWAIT")


@dataclass(frozen=True)
class Record:
    line: int
    td: str
    tsc: int
    kind: str
    name: str
    arg: str


@dataclass
class Timeline:
    """A parsed dump: spans per thread (time in us from the first record), and what
    had to be repaired or skipped, with line numbers."""
    spans: list[Span]
    total_us: float
    threads: dict[str, str]  # td -> track name
    problems: list[str] = field(default_factory=list)
    backwards: int = 0  # records whose TSC went backwards
    truncated: bool = False
    records: int = 0
    t0_tsc: int | None = None  # the first record's TSC: time 0 of the spans


def parse_records(text: str) -> tuple[list[Record], list[str]]:
    """The well-formed records of TEXT, and one problem per bad line (with its number)."""
    records: list[Record] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if m is None:
            problems.append(f"line {number}: not a tslog record: {line[:80]!r}")
            continue
        td, tsc, kind, name, arg = m[1].lower(), int(m[2]), m[3], m[4] or "", m[5] or ""
        if kind in ("ENTER", "EXIT", "THREAD") and not name:
            problems.append(f"line {number}: {kind} without a name")
            continue
        if kind == "EVENT" and (name not in _EVENTS or not arg):
            problems.append(f"line {number}: EVENT must be HOLD/RELEASE/WAIT/UNWAIT with a topic, got {name!r}")
            continue
        if kind in ("ENTER", "EXIT") and arg:
            name, arg = f"{name} {arg}", ""
        records.append(Record(number, td if td.startswith("0x") else "0x" + td, tsc, kind, name, arg))
    return records, problems


def repair_backwards(records: list[Record]) -> tuple[list[int], int]:
    """Monotonic times in record order: when a TSC is below the previous one, every
    later record is shifted up by the gap (plus one cycle). Returns times and the count."""
    times: list[int] = []
    offset = last = 0
    repaired = 0
    for index, record in enumerate(records):
        value = record.tsc + offset
        if index and value < last:
            offset += last - value + 1
            value = last + 1
            repaired += 1
        times.append(value)
        last = value
    return times, repaired


BEFORE = "before the first record (firmware, loader)"
START_INIT = "start_init"  # FreeBSD's and NetBSD's last kernel step: it runs the first process


def timeline(text: str, tsc_hz: float, buffer_records: int = DEFAULT_BUFFER, pre_record: bool = True) -> Timeline:
    """Spans for each thread's function calls and waits, from a dump's TEXT.

    PRE_RECORD: time starts at TSC 0 (the CPU's reset), and the time before the kernel's
    first record is a frame of its own, as FreeBSD's charts draw it; leave it out for
    VMs whose TSC does not start at reset (time 0 is then the first record)."""
    if tsc_hz <= 0:
        raise ValueError("the TSC frequency must be positive")
    records, problems = parse_records(text)
    if not records:
        return Timeline([], 0.0, {}, problems + ["no tslog records"], truncated=True)
    times, backwards = repair_backwards(records)
    if backwards:
        problems.append(f"TSC went backwards {backwards} time(s): later records shifted to keep time monotonic")
    t0 = 0 if pre_record else times[0]

    def us(t: int) -> float:
        return (t - t0) * 1e6 / tsc_hz

    names = _thread_names(records)
    builder = _Builder(names, us)
    for record, t in zip(records, times, strict=True):
        builder.feed(record, t, problems)
    end = times[-1]
    still_open = builder.close_all(end)
    truncated = still_open > 0 or len(records) >= buffer_records
    if still_open:
        problems.append(f"truncated: {still_open} frame(s) still open at the last record, closed there")
    if builder.too_deep:
        problems.append(f"{builder.too_deep} frame(s) nested deeper than {MAX_DEPTH} were not drawn "
                        "(lost EXIT records?)")
    if len(records) >= buffer_records:
        problems.append(f"truncated: {len(records)} records fill the kernel's buffer ({buffer_records})")
    drawn = list(builder.spans)
    if pre_record and times[0] > 0:  # before the thread's root is sized, so the root holds it
        kernel = next((n for n in names.values() if n == "kernel"), names[records[0].td])
        drawn.append(Span(kernel, (kernel, BEFORE), 0.0, us(times[0]), "function", "TSC 0 (reset) to the first record"))
    spans = drawn + _thread_roots(drawn)
    spans += attribute_waits(spans)
    if not any(r.kind == "ENTER" and r.name.split(" ", 1)[0] == START_INIT for r in records):
        problems.append(f"no {START_INIT} record: the profile ends at the last record and may be truncated")
    return Timeline(spans, us(end), names, problems, backwards, truncated, len(records), t0)


def _thread_names(records: list[Record]) -> dict[str, str]:
    """Track names: the boot thread (the one entering the kernel's main) is "kernel",
    others their THREAD name, else their pointer."""
    names: dict[str, str] = {}
    for r in records:
        if r.kind == "THREAD":
            names.setdefault(r.td, r.name)
        if r.kind == "ENTER" and r.name in MAIN_FUNCTIONS:
            names[r.td] = "kernel"
    if EARLY_TD in {r.td for r in records} and EARLY_TD not in names and "kernel" in names.values():
        names[EARLY_TD] = "kernel"  # records before curthread exists: the boot thread's own start
    for r in records:
        names.setdefault(r.td, r.td)
    used: dict[str, int] = {}
    for td, name in names.items():  # two threads may share a name: keep tracks apart
        used[name] = used.get(name, 0) + 1
        if used[name] > 1 and td != EARLY_TD:
            names[td] = f"{name} ({td})"
    return names


EARLY_TD = "0x0"  # FreeBSD logs its earliest records (hammer_time) with no thread yet


MAX_DEPTH = 256  # frames nested deeper are not drawn: real kernels nest far less; a dump
# that does is broken (lost EXITs), and drawing it would cost the square of its depth


class _Frame:
    """An open frame: its name, start, kind and the stack it is drawn at (built once,
    from its parent's, so deep nesting costs each frame its own depth at most MAX_DEPTH)."""

    __slots__ = ("name", "start", "kind", "stack")

    def __init__(self, name: str, start: int, kind: str, stack: tuple[str, ...] | None) -> None:
        self.name, self.start, self.kind, self.stack = name, start, kind, stack


class _Builder:
    """Per-thread stacks of open frames, turned into spans as they close."""

    def __init__(self, names: dict[str, str], us: Callable[[int], float]) -> None:
        self.names = names
        self.us = us
        self.spans: list[Span] = []
        self.stacks: dict[str, list[_Frame]] = {}  # td -> open frames, innermost last
        self.first: dict[str, int] = {}
        self.too_deep = 0  # frames not drawn for nesting deeper than MAX_DEPTH

    def _root(self, td: str) -> tuple[str, ...]:
        return (self.names[td],)

    def _push(self, td: str, stack: list[_Frame], name: str, t: int, kind: str) -> None:
        parent = stack[-1].stack if stack else self._root(td)
        drawn = parent + (name,) if parent is not None and len(stack) < MAX_DEPTH else None
        stack.append(_Frame(name, t, kind, drawn))

    def _emit(self, td: str, frame: _Frame, end: int, note: str = "") -> None:
        if frame.stack is None:
            self.too_deep += 1
            return
        self.spans.append(Span(self.names[td], frame.stack, self.us(frame.start), self.us(end), frame.kind, note))

    def feed(self, r: Record, t: int, problems: list[str]) -> None:
        stack = self.stacks.setdefault(r.td, [])
        self.first.setdefault(r.td, t)
        if r.kind == "ENTER":
            self._push(r.td, stack, r.name, t, "function")
        elif r.kind == "EXIT":
            self._exit(r, t, stack, problems)
        elif r.kind == "THREAD" and stack:
            problems.append(f"line {r.line}: THREAD {r.name} on a thread with {len(stack)} open frame(s)")
        elif r.kind == "EVENT" and r.name == "WAIT":
            self._push(r.td, stack, f"wait {r.arg}", t, "wait")
        elif r.kind == "EVENT" and r.name == "UNWAIT":
            self._exit(Record(r.line, r.td, r.tsc, "EXIT", f"wait {r.arg}", ""), t, stack, problems)
        elif r.kind == "EVENT":  # HOLD/RELEASE: an instant on the holder's track
            self.spans.append(Span(self.names[r.td], self._root(r.td) + (f"{r.name.lower()} {r.arg}",),
                                   self.us(t), self.us(t), "event"))

    def _exit(self, r: Record, t: int, stack: list[_Frame], problems: list[str]) -> None:
        # An EXIT closes the innermost frame of its function, whatever the ENTER's argument:
        # NetBSD writes `ENTER config_attach_internal cpu` but `EXIT config_attach_internal`,
        # and FreeBSD's own scripts match on the function alone. The frame keeps its
        # ENTER's full name.
        function = _function(r.name)
        if stack and _function(stack[-1].name) == function:  # the usual case: the innermost frame ends
            self._emit(r.td, stack.pop(), t)
            return
        depth = next((i for i in range(len(stack) - 1, -1, -1) if _function(stack[i].name) == function), None)
        if depth is None:
            # entered before the dump began: a frame from the thread's first record
            problems.append(f"line {r.line}: EXIT {r.name} without ENTER: started before the dump")
            self._reroot(r.td, stack, r.name)
            depth = 0
        while len(stack) > depth + 1:  # frames that never EXITed inside this one
            problems.append(f"line {r.line}: {stack[-1].name} never exited before {r.name} did: closed with it")
            self._emit(r.td, stack.pop(), t)
        self._emit(r.td, stack.pop(), t)

    def _reroot(self, td: str, stack: list[_Frame], outer: str) -> None:
        """OUTER was open before the dump began: put it under every span already closed on
        TD and under the open frames, and open it at the thread's first record."""
        track = self.names[td]
        for i, span in enumerate(self.spans):
            if span.track == track:
                self.spans[i] = Span(span.track, (span.stack[0], outer, *span.stack[1:]), span.start_us,
                                     span.end_us, span.kind, span.note)
        opened = list(stack)
        stack.clear()
        self._push(td, stack, outer, self.first[td], "function")
        for frame in opened:
            self._push(td, stack, frame.name, frame.start, frame.kind)

    def close_all(self, end: int) -> int:
        count = 0
        for td, stack in self.stacks.items():
            while stack:
                self._emit(td, stack.pop(), end, note="still open when the dump ended")
                count += 1
        return count


def _function(name: str) -> str:
    """A frame's function: its name without the ENTER's argument (`wait X` stays whole)."""
    return name if name.startswith("wait ") else name.split(" ", 1)[0]


def _thread_roots(spans: list[Span]) -> list[Span]:
    """One root span per thread, covering its records: the frame its stacks hang from."""
    bounds: dict[str, tuple[float, float]] = {}
    for s in spans:
        lo, hi = bounds.get(s.track, (s.start_us, s.end_us))
        bounds[s.track] = (min(lo, s.start_us), max(hi, s.end_us))
    return [Span(track, (track,), lo, hi, "thread") for track, (lo, hi) in bounds.items()]


def attribute_waits(spans: list[Span]) -> list[Span]:
    """While a thread waits for a topic, the boot is as slow as the thread holding it:
    copy the holder's frames from inside the wait under the wait's frame (the last
    thread to release the topic before the wait ended is the one waited for)."""
    releases: dict[str, list[tuple[float, str]]] = {}
    for span in spans:
        if span.kind == "event" and span.name.startswith("release "):
            releases.setdefault(span.name.removeprefix("release "), []).append((span.start_us, span.track))
    by_track: dict[str, list[Span]] = {}
    for span in spans:
        if span.kind in ("function", "wait"):
            by_track.setdefault(span.track, []).append(span)
    out = []
    for wait in (s for s in spans if s.kind == "wait"):
        topic = wait.name.removeprefix("wait ")
        before = [(t, track) for t, track in releases.get(topic, []) if wait.start_us <= t <= wait.end_us]
        if not before:
            continue
        holder = max(before)[1]
        for span in by_track.get(holder, []):
            start, end = max(span.start_us, wait.start_us), min(span.end_us, wait.end_us)
            if start < end or (start == end and span.start_us == span.end_us):
                out.append(Span(wait.track, wait.stack + (holder,) + span.stack[1:], start, end, span.kind,
                                f"on {holder}, while {wait.track} waited for {topic}"))
        out.append(Span(wait.track, wait.stack + (holder,), wait.start_us, wait.end_us, "thread",
                        f"{holder} held {topic}"))
    return out


_USER_LINE = re.compile(r'^(\d+) (\d+) (\d+) (\d+) "(.*)" "(.*)"$')


def user_spans(text: str, tsc_hz: float, t0_tsc: int | None = None, track: str = "userland",
               end_tsc: int | None = None) -> tuple[list[Span], list[str]]:
    """FreeBSD's `debug.tslog_user` (lines `PID PPID TSC_START TSC_END "EXEC" "NAMEI"`), or a
    Linux process timeline written by guestlog.to_tslog_user(), as one track of process
    spans nested under their parents. A process is named by what it exec'd, else the first
    path it looked up, else its parent's name; one that outlives its parent is cut at the
    parent's end (it did not hold the boot up). T0_TSC is the origin (default: the first start);
    END_TSC is where processes still running end (default: the log's last time)."""
    rows: dict[int, tuple[int, int, int, str, str]] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        m = _USER_LINE.match(raw.strip())
        if m is None:
            problems.append(f"line {number}: not a tslog_user record: {raw.strip()[:80]!r}")
            continue
        if int(m[3]) == 0:  # never started while the log ran
            continue
        rows[int(m[1])] = (int(m[2]), int(m[3]), int(m[4]), m[5], m[6])
    if not rows:
        return [], problems
    origin = t0_tsc if t0_tsc is not None else min(r[1] for r in rows.values())
    end_of_log = end_tsc if end_tsc is not None else max(max(r[1], r[2]) for r in rows.values())

    def name(pid: int, depth: int = 0) -> str:
        ppid, _, _, exec_name, namei = rows[pid]
        if exec_name:
            return exec_name
        if namei or ppid not in rows or depth > 64:
            return namei or "?"
        return name(ppid, depth + 1)

    def stack(pid: int, depth: int = 0) -> tuple[str, ...]:
        ppid = rows[pid][0]
        own = f"{name(pid)} [{pid}]"
        if ppid not in rows or ppid == pid or depth > 64:
            return (own,)
        return (*stack(ppid, depth + 1), own)

    def end(pid: int, depth: int = 0) -> int:
        ppid, start, stop, _, _ = rows[pid]
        stop = stop if stop >= start else end_of_log  # still running when the log was read
        if ppid in rows and ppid != pid and depth < 64:
            stop = min(stop, end(ppid, depth + 1))
        return max(stop, start)

    spans = []
    for pid, (_, start, _, _, _) in rows.items():
        spans.append(Span(track, stack(pid), (start - origin) * 1e6 / tsc_hz, (end(pid) - origin) * 1e6 / tsc_hz,
                          "process"))
    return _nest_starts(spans), problems


def _nest_starts(spans: list[Span]) -> list[Span]:
    """A child cannot start before its parent in the drawing (clock skew): clamp it."""
    starts = {s.stack: s.start_us for s in spans}
    out = []
    for s in spans:
        lo = max([s.start_us] + [starts[s.stack[:d]] for d in range(1, len(s.stack)) if s.stack[:d] in starts])
        out.append(Span(s.track, s.stack, lo, max(lo, s.end_us), s.kind, s.note))
    return out
