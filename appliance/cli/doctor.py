"""`appliance doctor`: what this machine has, and what to install or change."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from appliance.boot import accel, perf
from appliance.proc import PACKAGES

TOOLS = ("qemu-system-x86_64", "diet", "gcc", "strip", "apt-get", "dpkg-deb", "cpio", "mke2fs",
         "make", "bison", "flex", "bc")  # the last four: the minimal kernel's build
# Clocksources that make host timestamps cheap and stable.
GOOD_CLOCKSOURCES = ("tsc", "kvm-clock")


def checks() -> list[tuple[bool, str]]:
    """(ok, line) pairs; each failing line says what to do."""
    out: list[tuple[bool, str]] = []
    for tool in TOOLS:
        path = shutil.which(tool)
        out.append((path is not None, f"{tool}: {path}" if path else
                    f"{tool} missing: apt-get install {PACKAGES.get(tool, tool)}"))
    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        listing = subprocess.run([qemu, "-trace", "help"], capture_output=True, text=True, timeout=30,
                                 check=False).stdout
        traced = "memory_region_ops_write" in listing
        out.append((traced, "QEMU trace backend usable (memory_region_ops_write)" if traced else
                    "QEMU has no memory_region_ops_write trace event: install Debian's qemu-system-x86, "
                    "or use --channel exit or serial"))
        works, why = accel.kvm_works(qemu)
        out.append((True, f"KVM {'usable' if works else 'not usable, TCG will be used'}: {why}"))
        ok, reason = perf.available("kvm" if works else "tcg")
        out.append((True, f"perf channel {'available' if ok else 'not available'}: {reason}"))
    clocksource = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    current = clocksource.read_text().strip() if clocksource.exists() else "unknown"
    out.append((current in GOOD_CLOCKSOURCES, f"host clocksource {current}" + (
        "" if current in GOOD_CLOCKSOURCES else
        f": timestamps cost more and jitter; prefer {' or '.join(GOOD_CLOCKSOURCES)} if the host offers it")))
    return out
