"""The records profiled sends from the guest (recipes/programs/profiled.c): parsing,
the process timeline, memory per stage, and the kernel log as console-like text.

The stream is JSON lines, each `{"v": 1, "t": BOOTTIME_NS, "type": ..., ...}`. A bad
line, an unknown version, or a stream without its `end` record (truncated: the guest
stopped before profiled wrote everything) is reported with its line number, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
TYPES = ("hello", "mem", "kmsg", "proc", "stat", "note", "ftrace", "end")
# memory figures as `free -m` shows them, in KiB from /proc/meminfo
MEM_FIELDS = ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "Shmem", "SReclaimable", "Slab")


@dataclass
class GuestLog:
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    complete: bool = False  # the end record arrived, and its count matches

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]


def parse(text: str) -> GuestLog:
    out = GuestLog()
    end: dict[str, Any] | None = None
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            last = number == len(lines) or (number == len(lines) - 1 and not lines[-1])
            why = "cut off (the stream ended mid-record)" if last else "not a JSON record"
            out.problems.append(f"line {number}: {why}: {line[:60]!r}")
            continue
        if not isinstance(record, dict) or record.get("type") not in TYPES or not isinstance(record.get("t"), int):
            out.problems.append(f"line {number}: not a profiled record (type and integer t needed)")
            continue
        if record.get("v") != VERSION:
            out.problems.append(f"line {number}: record version {record.get('v')!r}, this tool reads {VERSION}")
            continue
        out.records.append(record)
        if record["type"] == "end":
            end = record
    if end is None:
        out.problems.append("truncated: no end record (profiled did not finish, or the stream was cut)")
    elif end.get("records") != len(out.records):
        out.problems.append(f"the end record counts {end.get('records')} records, {len(out.records)} arrived")
    else:
        out.complete = True
    if end is not None and end.get("dropped"):
        out.problems.append(f"profiled dropped {end['dropped']} record(s): its buffer was full")
    if end is not None and end.get("kmsg_lost"):
        out.problems.append(f"the kernel log wrapped {end['kmsg_lost']} time(s) before profiled read it: "
                            "boot with a larger log_buf_len=")
    return out


def memory(log: GuestLog) -> dict[str, dict[str, int]]:
    """Stage -> MEM_FIELDS in KiB, plus `used_kib` as free(1) computes it."""
    stages = {}
    for r in log.of("mem"):
        figures = {k: int(r.get(k, 0)) for k in MEM_FIELDS}
        cache = figures["Buffers"] + figures["Cached"] + figures["SReclaimable"]
        figures["used_kib"] = figures["MemTotal"] - figures["MemFree"] - cache
        figures["t_ns"] = r["t"]  # CLOCK_BOOTTIME of the reading
        stages[str(r.get("stage"))] = figures
    return stages


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int | None
    fork_ns: int | None
    exec_ns: int | None
    exit_ns: int | None
    path: str
    status: int | None  # the raw wait status the kernel reported


def processes(log: GuestLog) -> list[Process]:
    """Every process the events name, in order of first appearance."""
    found: dict[int, dict[str, Any]] = {}
    for r in log.of("proc"):
        pid = r.get("pid")
        if not isinstance(pid, int):
            continue
        entry = found.setdefault(pid, {"ppid": None, "fork": None, "exec": None, "exit": None, "path": "",
                                       "status": None})
        if r.get("event") == "fork":
            entry.update(ppid=r.get("ppid"), fork=r["t"])
        elif r.get("event") == "exec":
            entry.update(exec=r["t"], path=r.get("path") or entry["path"])
        elif r.get("event") == "exit":
            entry.update(exit=r["t"], status=r.get("status"))
    return [Process(pid, e["ppid"], e["fork"], e["exec"], e["exit"], e["path"], e["status"])
            for pid, e in found.items()]


def trace_text(log: GuestLog) -> str:
    """The ftrace buffer's lines profiled sent (empty when the boot traced nothing)."""
    lines = [str(r.get("line", "")) for r in log.of("ftrace")]
    return "\n".join(lines) + ("\n" if lines else "")


def kernel_log_text(log: GuestLog) -> str:
    """The kernel log as the console shows it (`[  s.us] text`), for the initcall parser."""
    lines = []
    for r in sorted(log.of("kmsg"), key=lambda r: r.get("seq", 0)):
        us = int(r.get("ts_us", 0))
        lines.append(f"[{us // 1_000_000:5d}.{us % 1_000_000:06d}] {r.get('msg', '')}")
    return "\n".join(lines) + ("\n" if lines else "")


def summary(log: GuestLog) -> dict[str, Any]:
    """What the results keep per run besides the raw records."""
    hello = next(iter(log.of("hello")), {})
    notes = [str(r.get("msg")) for r in log.of("note")]
    return {
        "complete": log.complete,
        "problems": log.problems,
        "notes": notes,
        "proc_events": bool(hello.get("proc_events")),
        "memory": memory(log),
        "processes": [p.__dict__ for p in processes(log)],
        "kmsg_records": len(log.of("kmsg")),
        "ftrace_records": len(log.of("ftrace")),
        "stat_samples": len(log.of("stat")),
    }


def to_tslog_user(procs: list[Process]) -> str:
    """The process timeline in FreeBSD's `debug.tslog_user` format (`PID PPID START END
    "EXEC" "NAMEI"`, times CLOCK_BOOTTIME ns: read it with --tsc-hz 1e9), so the tslog
    tooling draws a Linux boot's userland as it draws FreeBSD's."""
    lines = []
    for p in procs:
        start = p.fork_ns if p.fork_ns is not None else p.exec_ns
        if start is None:
            continue
        end = p.exit_ns if p.exit_ns is not None else 0  # 0: still running
        path = p.path.split(" ", 1)[0].replace('"', "'")
        lines.append(f'{p.pid} {p.ppid if p.ppid is not None else 1} {start} {end} "{path}" ""')
    return "\n".join(lines) + ("\n" if lines else "")
