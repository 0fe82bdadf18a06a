"""How busy the host was during a boot: load average, steal time, other work's CPU.

Under TCG a boot is CPU-bound, so anything else the host runs during it (another
build, a noisy neighbour's steal) lengthens it. Each boot records the host's CPU
accounting from /proc/stat around it; the CPU QEMU itself used (from wait4) is taken
out, so what is left is other work. A boot is *disturbed* when other work took more
than BUSY_SHARE of the machine or steal passed STEAL_SHARE; such boots are counted and
kept (dropping them would bias the figures), and the verbs warn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from appliance import results
from appliance.results import RunRecord

BUSY_SHARE = 0.25  # of all CPUs' time, used by processes other than the boot's QEMU
STEAL_SHARE = 0.05  # of all CPUs' time, taken by the hypervisor
_HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    busy_s: float  # user + nice + system + irq + softirq, all CPUs
    steal_s: float
    total_s: float  # every field of the cpu line but guest (already in user)


def parse_stat(text: str) -> CpuTimes | None:
    """The aggregate `cpu` line of /proc/stat, in seconds; None if it is not there."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu" and len(fields) >= 9:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) / _HZ for v in fields[1:9])
            return CpuTimes(user + nice + system + irq + softirq, steal,
                            user + nice + system + idle + iowait + irq + softirq + steal)
    return None


def sample() -> CpuTimes | None:
    try:
        with open("/proc/stat") as stat:
            return parse_stat(stat.read())
    except OSError:
        return None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def during(before: CpuTimes | None, after: CpuTimes | None, own_cpu_s: float, loadavg: float | None,
           stopped_ms: float = 0.0) -> dict[str, Any]:
    """The host's load over one boot: shares of all CPUs' time, whether QEMU was stopped
    (SIGSTOP) for a while, and whether any of it disturbed the boot."""
    out: dict[str, Any] = {"loadavg_1m": loadavg, "others_cpu_share": None, "steal_share": None,
                           "stopped_ms": round(stopped_ms, 1), "disturbed": stopped_ms > 0}
    if before is None or after is None or after.total_s <= before.total_s:
        return out
    total = after.total_s - before.total_s
    others = max(0.0, (after.busy_s - before.busy_s) - own_cpu_s) / total
    steal = (after.steal_s - before.steal_s) / total
    out.update(others_cpu_share=round(others, 4), steal_share=round(steal, 4),
               disturbed=stopped_ms > 0 or others > BUSY_SHARE or steal > STEAL_SHARE)
    return out


def warning(runs: list[RunRecord]) -> str | None:
    count, counted = results.disturbed(runs), len(results.counted(runs))
    if not count:
        return None
    return (f"the host was busy during {count} of {counted} counted boot(s) (other processes over "
            f"{BUSY_SHARE:.0%} of the CPUs, steal over {STEAL_SHARE:.0%}, or QEMU stopped): their times are likely longer; "
            "rerun on a quiet host, or compare only side by side")
