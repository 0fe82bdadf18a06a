"""The perf channel: `perf record -e kvm:kvm_pio` sees every port write a KVM guest makes.

It needs KVM (the tracepoint lives in the kvm module) and perf; it records with
CLOCK_REALTIME so its times share the host clock of the other events.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from appliance import proc
from appliance.machines import Accel
from appliance.probes import PORT_FIRMWARE, PORT_KERNEL, Event

_PIO = re.compile(r"^\s*(?P<sec>\d+)\.(?P<frac>\d+):?\s+.*pio_write at 0x(?P<port>[0-9a-f]+) "
                  r"size 1 count 1 val 0x(?P<val>[0-9a-f]+)")
RECORD_ARGS = ("record", "-q", "-k", "CLOCK_REALTIME", "-e", "kvm:kvm_pio")


def available(accel: Accel) -> tuple[bool, str]:
    """Whether the perf channel can run here, and if not, why."""
    if Accel(accel) is not Accel.KVM:  # a caller's "kvm" is Accel.KVM
        return False, "it reads KVM's kvm_pio tracepoint and this run uses TCG (KVM is not usable here)"
    if shutil.which("perf") is None:
        return False, "perf is not installed (apt-get install linux-perf)"
    done = proc.run(["perf", "list", "kvm:kvm_pio"], timeout=30, check=False)
    if "kvm:kvm_pio" not in done.stdout:
        return False, "perf cannot see the kvm:kvm_pio tracepoint (run as root, or lower kernel.perf_event_paranoid)"
    return True, "perf and KVM present"


def parse(text: str, table: dict[tuple[int, int], str]) -> list[Event]:
    """Probe events from `perf script --ns -F time,trace` output of kvm:kvm_pio."""
    out = []
    for line in text.splitlines():
        match = _PIO.match(line)
        if match is None:
            continue
        port, value = int(match["port"], 16), int(match["val"], 16)
        if port not in (PORT_KERNEL, PORT_FIRMWARE):
            continue
        ns = int(match["sec"]) * 1_000_000_000 + int(match["frac"].ljust(9, "0")[:9])
        out.append(Event(table.get((port, value), f"unknown_{port:#x}_{value:#x}"), ns, "perf"))
    return out


def parse_perf_script(perf_data: Path, table: dict[tuple[int, int], str]) -> list[Event]:
    done = proc.run(["perf", "script", "-i", str(perf_data), "--ns", "-F", "time,trace"], timeout=120, check=False)
    return parse(done.stdout, table)
