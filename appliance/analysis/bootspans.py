"""One boot as spans on the host's timeline: phases, the kernel's initcalls, module loads
and the payload; and the timeline and top-N tables made from them.

Host probes give the phases (ms from QEMU's exec). Initcalls carry the guest's printk
clock and module loads its CLOCK_BOOTTIME: each clock is placed on the host timeline by
one anchor seen on both sides. The printk clock: the kernel's "Run /init as init
process" line is printed just before it executes init, i.e. at linux_start_user (the
patched kernel's probe) or, without it, just before init_start. CLOCK_BOOTTIME: our
init prints init_start with it. A child that the anchoring puts slightly outside its
parent is clipped to it and says so.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from appliance import guestlog
from appliance.analysis import tslog
from appliance.analysis.initcalls import Initcall, Stat, stage_span
from appliance.analysis.initcalls import staged as initcall_stage
from appliance.analysis.spans import Span
from appliance.phases import FIRMWARE_START, KERNEL_START, payload_probe
from appliance.results import RunRecord

_RUN_INIT = re.compile(r"^\[\s*(\d+)\.(\d+)\] Run \S+ as init process", re.M)
TRACK = "boot"
MODULE_TRACK = "modules"  # modules' initcalls after init ran (a log's, another init's)
LOG_END = "log_end"  # a kernel log that never ran init ends here (a crash, a hang)
# what a kernel that stops says, first line of it (the note on where the picture ends)
_STOPPED = re.compile(r"^\[\s*(\d+)\.(\d+)\] ((?:Kernel panic|BUG: |Oops|general protection fault|"
                      r"watchdog: BUG|INFO: task .* blocked|Unable to handle kernel).*)$", re.M)
# Kernel-log lines that mark a step of every Linux boot, in the order they come: without
# initcall_debug they still split the kernel phase into named parts.
MILESTONES = (
    ("memory set up", re.compile(r"Memory: \d+K/\d+K available")),
    ("timers and CPUs", re.compile(r"(smp: Brought up|smpboot: Total of|Calibrating delay loop)")),
    ("devices and drivers", re.compile(r"clocksource: Switched to clocksource")),
    ("init memory freed", re.compile(r"Freeing unused kernel (image|memory)")),
)
_STAMPED = re.compile(r"^\[\s*(\d+)\.(\d+)\] (.*)$", re.M)
# the patched kernel's probes split the phase without any log (a quiet console)
PROBE_PARTS = (("decompress and set up", "linux_start_kernel"), ("start_kernel to init", "linux_start_user"),
               ("exec init", "init_start"))


def printk_anchor(console: str) -> float | None:
    """The printk time (us) of "Run /init as init process", if the kernel printed it."""
    m = _RUN_INIT.search(console)
    return int(m[1]) * 1e6 + int(m[2].ljust(6, "0")[:6]) if m else None


def _clip(child: Span, parent: Span) -> Span:
    start, end = max(child.start_us, parent.start_us), min(child.end_us, parent.end_us)
    if (start, end) == (child.start_us, child.end_us):
        return child
    note = "; ".join(filter(None, (child.note, "clipped to its parent (clock anchoring)")))
    return Span(child.track, child.stack, start, max(start, end), child.kind, note)


def boot_spans(run: RunRecord, console: str, initcalls: list[Initcall],
               hung: list[Initcall] = ()) -> list[Span]:  # type: ignore[assignment]
    """Spans of one boot: RUN is a results run record (events, guest probes, modules);
    HUNG, the initcalls that never returned (drawn to where the boot stopped)."""
    t = {e["name"]: e["t_ms"] * 1000 for e in run["events"]}  # us from QEMU's exec
    spans: list[Span] = []
    end = t.get("qemu_exit", max(t.values()))
    root = Span(TRACK, ("boot",), 0.0, end, "phase")
    spans.append(root)

    def phase(name: str, start: str | None, stop: str | None, parent: Span = root, kind: str = "phase") -> Span | None:
        if start is None or stop is None or start not in t or stop not in t or t[stop] < t[start]:
            return None
        span = _clip(Span(TRACK, parent.stack + (name,), t[start], t[stop], kind), parent)
        spans.append(span)
        return span

    fw = next((n for n in FIRMWARE_START if n in t), None)
    entry = next((n for n in KERNEL_START if n in t), None)
    phase("qemu", "qemu_exec", fw or entry)
    phase("firmware", fw, entry)
    kernel = phase("kernel", entry, "init_start") or phase("kernel", entry, LOG_END)
    # everything after the kernel: the init phase (init_start -> payload_start, as in the
    # phase table, with its module loads), then the payload; one name, one meaning
    user = phase("userspace", "init_start", "payload_end" if "payload_end" in t else "qemu_exit")
    init = phase("init", "init_start", "payload_start", parent=user) if user is not None else None
    payload = None
    if user is not None and "service_ready" in t:  # a service: its start-up, then serving until the host's stop
        payload = phase("service start-up", "payload_start", "service_ready", parent=user, kind="payload")
        phase("serving until stopped", "service_ready", "payload_end", parent=user)
    elif user is not None:
        payload = phase("payload", "payload_start", "payload_end", parent=user, kind="payload")
    if kernel is not None:
        spans += _kernel_children(kernel, t, console, initcalls, list(hung)) or _probe_parts(kernel, t)
        if LOG_END in t:
            spans.append(_stop_mark(kernel, console))
    if user is not None:
        spans += _init_children(init or user, run, initcalls)
        spans += _payload_probes(payload or user, t)
        if init is None and payload is None:  # not our init's boot (a log, another init): it loads no modules of ours
            spans += _module_calls(user, run, console, initcalls, t)
    spans += process_track(run, end)
    return spans


def _boottime_offset_us(run: RunRecord) -> float | None:
    """Host us from exec = guest CLOCK_BOOTTIME us + this (anchored at init_start)."""
    guest = {p["name"]: p["boottime_ns"] / 1000 for p in run.get("guest_probes", [])}
    host = {e["name"]: e["t_ms"] * 1000 for e in run["events"]}
    if "init_start" not in guest or "init_start" not in host:
        return None
    return float(host["init_start"] - guest["init_start"])


def process_track(run: RunRecord, end_us: float) -> list[Span]:
    """profiled's process timeline (fork, exec, exit of every process) as its own track."""
    procs = (run.get("profiled") or {}).get("processes")
    offset = _boottime_offset_us(run)
    if not procs or offset is None:
        return []
    return process_spans([guestlog.Process(**p) for p in procs], offset, end_us)


def memory_counters(run: RunRecord) -> list[tuple[str, float, dict[str, float]]]:
    """Guest memory per stage as counter samples on the host timeline (MiB)."""
    stages = (run.get("profiled") or {}).get("memory", {})
    offset = _boottime_offset_us(run)
    if offset is None:
        return []
    return [("guest memory MiB", m["t_ns"] / 1000 + offset,
             {"used": m["used_kib"] / 1024, "free": m["MemFree"] / 1024, "available": m["MemAvailable"] / 1024})
            for m in stages.values() if "t_ns" in m]


def _stop_mark(kernel: Span, console: str) -> Span:
    """An instant where a log that never ran init ends, with what the kernel said first."""
    said = _STOPPED.search(console)
    note = f"the log ends here without running init: {said[3].strip()[:160]}" if said else \
        "the log ends here without running init (no Run /init line)"
    return Span(TRACK, kernel.stack + ("stopped",), kernel.end_us, kernel.end_us, "event", note)


def _log_end_us(console: str) -> float | None:
    stamps = [int(m[1]) * 1e6 + int(m[2].ljust(6, "0")[:6]) for m in _STAMPED.finditer(console)]
    return max(stamps) if stamps else None


def _kernel_children(kernel: Span, t: dict[str, float], console: str, initcalls: list[Initcall],
                     hung: list[Initcall]) -> list[Span]:
    anchor = printk_anchor(console)
    host_anchor = t.get("linux_start_user", t.get("init_start"))
    if anchor is None and LOG_END in t:  # a log that stopped in the kernel: its last line is the anchor
        anchor, host_anchor = _log_end_us(console), t[LOG_END]
    if anchor is None or host_anchor is None:
        return []
    offset = host_anchor - anchor  # host us = printk us + offset
    out = []
    early_end = max(kernel.start_us, offset)  # printk's clock starts after decompression and early setup
    out.append(_clip(Span(TRACK, kernel.stack + ("early boot",), kernel.start_us, early_end, "phase",
                          "decompression and setup, before the kernel's clock runs"), kernel))
    builtin = [c for c in initcalls if c.module is None]
    if not builtin:
        out += _milestones(kernel, early_end, console, offset)
    # console initcalls (`@ 0`) run inside start_kernel; the initcall stage starts at the
    # first one kernel_init runs (`@ 1`): one boundary for the timeline and every total
    stage = initcall_stage(initcalls)
    stuck = [c for c in hung if c.module is None and c.pid != 0]  # the stage never finished
    span = stage_span(initcalls + stuck)
    if span is not None:
        calls_ms = sum(c.duration_us for c in stage) / 1000
        end = kernel.end_us if stuck else span[1] + offset  # a call that never returned holds the stage open
        group = _clip(Span(TRACK, kernel.stack + ("initcalls",), span[0] + offset, end, "phase",
                           f"{len(stage)} built-in initcalls: {calls_ms:.1f} ms in the calls, the rest printing "
                           "and scheduling between them" + ("; the boot stopped inside one" if stuck else "")),
                      kernel)
        out.append(group)
        early = _clip(Span(TRACK, kernel.stack + ("start_kernel",), early_end, group.start_us, "phase",
                           "from the kernel's clock start to its first initcall (console initcalls inside)"), kernel)
        out.append(early)
        if not stuck:
            out.append(_clip(Span(TRACK, kernel.stack + ("to init",), group.end_us, kernel.end_us, "phase",
                                  "after the last built-in initcall: freeing init memory, running /init"), kernel))
        out += _call_spans([c for c in builtin if c.pid == 0], early, offset)  # console initcalls
        out += _call_spans(stage, group, offset)
        out += _hung_spans(stuck, group, offset)
    return out


def _hung_spans(hung: list[Initcall], parent: Span, offset: float) -> list[Span]:
    """Initcalls that never returned, from their `calling` line to where the boot stopped."""
    return [_clip(Span(TRACK, parent.stack + (f"{c.key} (never returned)",), c.start_us + offset, parent.end_us,
                       "initcall", "called and never returned: the boot stopped inside it"), parent)
            for c in hung]


def _call_spans(calls: list[Initcall], parent: Span, offset: float) -> list[Span]:
    """CALLS drawn under PARENT, in order, kept nested where two overlap (another pid);
    placed by their printk times where the kernel's own duration is jiffy-coarse."""
    out = []
    previous_end = parent.start_us
    for call in calls:
        start = max(call.start_us + offset, previous_end)
        notes = [f"returned {call.ret}"] if call.ret else []
        if call.coarse:
            notes.append(f"the kernel said {call.duration_us / 1000:g} ms (jiffies); drawn by its printk times")
        span = Span(TRACK, parent.stack + (call.key,), start, start + call.placed_us, "initcall", "; ".join(notes))
        out.append(_clip(span, parent))
        previous_end = span.end_us
    return out


def _milestones(kernel: Span, start_us: float, console: str, offset: float) -> list[Span]:
    """The kernel phase after the printk clock starts, cut at MILESTONES lines: each part
    is named for the step it ends with; the last runs to init."""
    stamps = [(int(m[1]) * 1e6 + int(m[2].ljust(6, "0")[:6]) + offset, m[3]) for m in _STAMPED.finditer(console)]
    out, begin = [], start_us
    for name, pattern in MILESTONES:
        at = next((us for us, text in stamps if pattern.search(text) and us >= begin), None)
        if at is not None:
            out.append(_clip(Span(TRACK, kernel.stack + (name,), begin, at, "phase", "up to this kernel-log line"),
                             kernel))
            begin = at
    if out:
        out.append(_clip(Span(TRACK, kernel.stack + ("to init",), begin, kernel.end_us, "phase",
                              "from the last milestone to running /init"), kernel))
    return out


def _probe_parts(kernel: Span, t: dict[str, float]) -> list[Span]:
    """The kernel phase split by the patched kernel's probes, when there is no log to read."""
    out, begin = [], kernel.start_us
    for name, probe in PROBE_PARTS:
        if probe in t and t[probe] >= begin:
            out.append(_clip(Span(TRACK, kernel.stack + (name,), begin, t[probe], "phase", f"up to {probe}"), kernel))
            begin = t[probe]
    return out if len(out) > 1 else []


def kernel_parts(spans: list[Span]) -> list[Span]:
    """The spans directly inside the kernel phase, in time order."""
    return sorted((s for s in spans if s.stack[:2] == ("boot", "kernel") and len(s.stack) == 3),
                  key=lambda s: s.start_us)


def _payload_probes(parent: Span, t: dict[str, float]) -> list[Span]:
    """The payload's own probes ([probes], the `probe` program): instants where they fired."""
    return [Span(TRACK, parent.stack + (name,), at, at, "event", "the payload's own probe")
            for name, at in sorted(t.items(), key=lambda item: item[1])
            if payload_probe(name) and parent.start_us <= at <= parent.end_us]


def _init_children(init: Span, run: RunRecord, initcalls: list[Initcall]) -> list[Span]:
    offset = _boottime_offset_us(run)
    if offset is None:
        return []
    by_module = {c.module: c for c in initcalls if c.module}
    out = []
    for module in run.get("guest_modules", []):
        start = module["start_ns"] / 1000 + offset
        span = _clip(Span(TRACK, init.stack + (f"load {module['name']}",), start,
                          start + module["duration_ns"] / 1000, "module"), init)
        out.append(span)
        call = by_module.get(module["name"])
        if call is not None:  # its init function ran inside finit_module: at its end, at the latest
            begin = max(span.start_us, span.end_us - call.duration_us)
            out.append(Span(TRACK, span.stack + (call.name,), begin, span.end_us, "initcall"))
    return out


def _module_calls(user: Span, run: RunRecord, console: str, initcalls: list[Initcall],
                  t: dict[str, float]) -> list[Span]:
    """Modules' initcalls the log has and no load of ours drew (a distribution's udev
    loads them after init runs, several at once): a "module initcalls" bar in userspace,
    and each call on a track of its own after the kernel's ("modules", "modules 2", ...:
    calls that overlap in time go to the next track), at their printk times."""
    ours = {m["name"] for m in run.get("guest_modules", [])}
    calls = sorted((c for c in initcalls if c.module and c.module not in ours), key=lambda c: c.start_us)
    anchor, host_anchor = printk_anchor(console), t.get("linux_start_user", t.get("init_start"))
    if not calls or anchor is None or host_anchor is None:
        return []
    offset = host_anchor - anchor
    group = _clip(Span(TRACK, user.stack + ("module initcalls",), calls[0].start_us + offset,
                       max(c.start_us + c.placed_us for c in calls) + offset, "phase",
                       f"{len(calls)} initcalls of {len({c.module for c in calls})} modules, loaded after init ran "
                       "(each on the modules tracks)"), user)
    out: list[Span] = [group]
    lanes: list[float] = []  # where each modules track's last call ends
    for call in calls:
        start, end = call.start_us + offset, call.start_us + offset + call.placed_us
        lane = next((i for i, free in enumerate(lanes) if free <= start), len(lanes))
        lanes[lane:lane + 1] = [end]
        out.append(Span(MODULE_TRACK if lane == 0 else f"{MODULE_TRACK} {lane + 1}", (f"{call.module}: {call.name}",),
                        start, end, "initcall", f"module {call.module}"))
    return out


@dataclass(frozen=True)
class Row:
    start_ms: float
    duration_ms: float
    share: float  # of the whole boot
    depth: int
    name: str
    kind: str


def timeline(spans: list[Span], min_share: float = 0.01) -> list[Row]:
    """The spans worth a line (phases and top-level spans always; others from MIN_SHARE of
    the boot), in time order."""
    total = max((s.end_us for s in spans), default=0.0) or 1.0
    rows = [Row(s.start_us / 1000, s.duration_us / 1000, s.duration_us / total, s.depth, s.name, s.kind)
            for s in sorted(spans, key=lambda s: (s.start_us, s.depth))
            if s.kind in ("phase", "payload") or s.depth <= 1 or s.duration_us / total >= min_share]
    return rows


def render_timeline(rows: list[Row], color: bool = False) -> str:
    """Start, duration, share and the name indented by depth; the longest leaf (an
    activity without children in the list) marked."""
    leaves = [r for i, r in enumerate(rows) if i + 1 == len(rows) or rows[i + 1].depth <= r.depth]
    longest = max(leaves, key=lambda r: r.duration_ms) if leaves else None
    lines = [f"{'start ms':>9} {'duration':>10} {'share':>6}  activity"]
    for r in rows:
        mark = "<- longest" if r is longest else ""
        text = f"{r.start_ms:9.1f} {r.duration_ms:10.1f} {r.share * 100:5.1f}%  {'  ' * r.depth}{r.name} {mark}".rstrip()
        lines.append(f"\033[1m{text}\033[0m" if (color and r is longest) else text)
    return "\n".join(lines)


def top_activities(stats: list[Stat], module_ms: dict[str, list[float]], phase_ms: dict[str, list[float]],
                   n: int = 15) -> list[tuple[str, str, float, float]]:
    """(kind, name, mean ms, stddev ms) of the N longest activities across boots: initcalls,
    module loads and the leaf phases."""
    items = [("initcall", s.key, s.mean_us / 1000, s.stddev_us / 1000) for s in stats]
    for kind, source in (("module", module_ms), ("phase", phase_ms)):
        for name, values in source.items():
            if values:
                items.append((kind, name, statistics.fmean(values),
                              statistics.stdev(values) if len(values) > 1 else 0.0))
    return sorted(items, key=lambda x: -x[2])[:n]


def process_spans(procs: list[guestlog.Process], offset_us: float, end_us: float, track: str = "processes") -> list[Span]:
    """The process timeline as a flamechart track, each process from its fork (or exec) to
    its exit under its parent: drawn by the same reader as FreeBSD's tslog_user. OFFSET_US
    maps guest boottime (us) to the host timeline; a process still running ends at END_US."""
    end_ns = int((end_us - offset_us) * 1000)
    items, _ = tslog.user_spans(guestlog.to_tslog_user(procs), 1e9, t0_tsc=0, track=track, end_tsc=end_ns)
    return [Span(s.track, s.stack, s.start_us + offset_us, s.end_us + offset_us, s.kind, s.note) for s in items]
