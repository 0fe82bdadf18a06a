"""The instruction clock on the host side: QEMU's arguments for it, the plugin's report,
and the instruction count of each probe event.

The plugin (plugin/insncount.c) writes `probe PORT VCPU VCPU_COUNT ALL_COUNT` at every
executed `out %al,$PORT` of the probe ports; QEMU's trace has the same writes with
their codes. They are matched in order, port by port: the k-th write to 0xf4 in the
trace is the k-th in the plugin's report. A run whose counts do not pair up (a probe
written another way, a report cut short) gets no instruction counts: one warning,
never a shifted count."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from appliance.clocks import Clock
from appliance.errors import BootError
from appliance.phases import EXEC, EXIT
from appliance.probes import PORT_FIRMWARE, PORT_KERNEL, Event

# 1 ns of virtual time per instruction, idle time warped; the RTC from a fixed date and on
# virtual time (on the host's clock its second boundaries, which the kernel waits for,
# fall at other instructions in every boot)
ICOUNT = ("-icount", "shift=0,sleep=off,align=off", "-rtc", "base=2020-01-01T00:00:00,clock=vm")


def qemu_args(clock: Clock, plugin: Path | None, report: Path, sample_every: int = 0) -> list[str]:
    """What QEMU needs for CLOCK: the plugin writing into REPORT (noting the guest PC every
    SAMPLE_EVERY instructions when that is not 0), and icount for virtual."""
    if not clock.counts:
        return []
    if plugin is None:
        raise BootError(f"--clock {clock} needs the instruction clock's plugin, and none was built")
    # QEMU's option syntax: a comma inside a value is written twice
    sampling = f",sample={sample_every}" if sample_every > 0 else ""
    args = ["-plugin", f"{str(plugin).replace(',', ',,')},out={str(report).replace(',', ',,')}{sampling}"]
    return args + list(ICOUNT) if clock is Clock.VIRTUAL else args


# KVM: the guest's retired instructions from the CPU's own counter, for the whole run
# (perf counts them only while the guest runs: the :G modifier). Per-probe counts would
# need the counter read at each port exit; what this gives is the total phase.
PERF_STAT = ("perf", "stat", "-e", "instructions:G", "-x", ",")


def perf_stat_args(report: Path) -> list[str]:
    """What goes before QEMU's argv to count a KVM guest's instructions into REPORT."""
    return [*PERF_STAT, "-o", str(report), "--"]


def parse_perf_stat(text: str) -> int | None:
    """The guest instructions in `perf stat -x ,` output (None: not counted, e.g. a
    host whose PMU is not passed to perf, which writes `<not supported>`)."""
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2].startswith("instructions"):
            return int(fields[0]) if fields[0].isdigit() else None
    return None


@dataclass
class Report:
    """What the plugin wrote for one boot."""

    vcpus: int = 0
    probes: list[tuple[int, int, int, int]] = field(default_factory=list)  # port, vcpu, its count, all vCPUs' count
    totals: dict[int, int] = field(default_factory=dict)  # per vCPU, at QEMU's exit
    end: int | None = None  # all vCPUs' instructions at exit; None: QEMU did not exit cleanly
    samples: dict[int, int] = field(default_factory=dict)  # guest PC -> hits


def parse(text: str) -> Report:
    """The plugin's report (lines it did not write are ignored)."""
    report = Report()
    for line in text.splitlines():
        word, *rest = line.split()
        try:
            if word == "vcpus":
                report.vcpus = int(rest[0])
            elif word == "probe":
                report.probes.append((int(rest[0], 16), int(rest[1]), int(rest[2]), int(rest[3])))
            elif word == "total":
                report.totals[int(rest[0])] = int(rest[1])
            elif word == "end":
                report.end = int(rest[0])
            elif word == "sample":
                report.samples[int(rest[0], 16)] = int(rest[1])
        except (IndexError, ValueError):
            continue  # a line cut short by a kill: the rest still counts
    return report


def _port(event: Event) -> int:
    return PORT_FIRMWARE if event.name in ("fw_start", "fw_do_boot") else PORT_KERNEL


def counts(events: list[Event], report: Report) -> tuple[dict[str, int], str | None]:
    """Each traced probe's instruction count (the first of a repeated name), QEMU's exec
    as 0 and its exit as the report's end; and a warning for writes left without a count.
    The plugin sees only writes made as `out %al,$PORT`: qboot writes its probes through
    %dx, and always before the kernel runs, so when the trace has more writes to a port
    than the plugin, the plugin's are the last ones; when it has fewer, the port's probes
    get no count rather than a shifted one."""
    traced = [e for e in events if e.source == "trace"]
    by_port: dict[int, list[int]] = {}
    for port, _vcpu, _mine, everyone in report.probes:
        by_port.setdefault(port, []).append(everyone)
    events_of: dict[int, list[Event]] = {}
    for event in traced:
        events_of.setdefault(_port(event), []).append(event)
    found: dict[str, int] = {EXEC: 0}
    notes = []
    for port, mine in sorted(events_of.items()):
        seen = by_port.get(port, [])
        if len(seen) > len(mine):
            notes.append(f"the instruction clock saw {len(seen)} probe writes to port {port:#x} and QEMU's trace "
                         f"{len(mine)}: those probes have no instruction counts")
            continue
        if len(seen) < len(mine):
            notes.append(f"the first {len(mine) - len(seen)} of {len(mine)} probe writes to port {port:#x} (the "
                         "firmware's, through %dx) have no instruction count")
        for event, count in zip(mine[len(mine) - len(seen):], seen, strict=True):
            found.setdefault(event.name, count)
    if report.end is not None:
        found[EXIT] = report.end
    return found, "; ".join(notes) or None
