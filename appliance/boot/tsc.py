"""The host's TSC frequency, which a TCG guest's TSC runs at.

Why it matters: under TCG, Linux calibrates its TSC against the PIT, and that loop fails
now and then when the host deschedules QEMU's vCPU thread. microvm has no HPET or ACPI
PM timer to fall back on, so the kernel marks the TSC unusable and wedges (here: about
one boot in thirty, console ending in "tsc: Marking TSC unstable due to could not
calculate TSC khz"). Passing `tsc_early_khz=` skips that calibration. QEMU's TCG `rdtsc`
returns the host's TSC, so the host's TSC frequency is the right value.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import time
from pathlib import Path

from appliance.clocks import Clock
from appliance.machines import Accel, Arch

# rdtsc; shl rdx, 32; or rax, rdx; ret
_RDTSC = bytes.fromhex("0f3148c1e2204809d0c3")


def measured_khz(interval_s: float = 0.05) -> int | None:
    """TSC ticks per millisecond over INTERVAL_S of CLOCK_MONOTONIC_RAW, or None."""
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        return None  # the host forbids executable anonymous memory
    page.write(_RDTSC)
    rdtsc = ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    best = None
    for _ in range(3):  # preemption only ever lowers the estimate: keep the highest
        t0, c0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW), rdtsc()
        time.sleep(interval_s)
        c1, t1 = rdtsc(), time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
        khz = (c1 - c0) * 1_000_000 // (t1 - t0)
        best = khz if best is None else max(best, khz)
    return int(best) if best else None


def cpuinfo_khz(text: str) -> int | None:
    """`cpu MHz` when the TSC is constant and the host is itself a VM (so no frequency
    scaling moves that figure away from the TSC rate)."""
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    if "constant_tsc" not in flags or "hypervisor" not in flags:
        return None
    mhz = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("cpu MHz")), None)
    return int(float(mhz) * 1000) if mhz else None


@functools.cache
def host_tsc_khz() -> int | None:
    khz = measured_khz()
    if khz:
        return khz
    try:
        return cpuinfo_khz(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


VIRTUAL_TSC_KHZ = 1_000_000  # under -icount QEMU's TSC counts virtual nanoseconds: 1 GHz
# A counting clock boots without address-space randomization: it draws from RDRAND and the
# host's time, and changes what every exec costs (measured under virtual time: k_exec
# varied by 6% between boots with it, not at all without it; docs/MEASUREMENT.md).
COUNTING_WORDS = "nokaslr norandmaps"


def runtime_cmdline(accel: Accel, arch: Arch = Arch.X86_64, clock: Clock = Clock.WALL) -> str:
    """Kernel command-line words the runner adds for this accelerator and clock (none for
    KVM, whose guests read the TSC rate from kvmclock, and none on aarch64, whose generic
    timer's frequency the device tree gives). Under virtual time the TSC runs at 1 GHz
    on every host, so the words, and the counts, do not depend on the host."""
    if Accel(accel) is not Accel.TCG or Arch(arch) is not Arch.X86_64:  # a caller's "tcg" is Accel.TCG
        return ""
    khz = VIRTUAL_TSC_KHZ if clock is Clock.VIRTUAL else host_tsc_khz()
    words = [f"tsc_early_khz={khz}" if khz else "", COUNTING_WORDS if clock.counts else ""]
    return " ".join(filter(None, words))
