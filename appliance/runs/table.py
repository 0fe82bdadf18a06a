"""Plain-text tables of results, for the terminal."""

from __future__ import annotations

from typing import Any

from appliance.clocks import Unit
from appliance.phases import PHASE_NAMES
from appliance.results import payload_probes

PHASE_HELP = {
    "qemu": "host exec -> firmware start (aarch64: the kernel's first device write)",
    "firmware": "firmware -> kernel entry (a boot loader's disk: -> its first read)",
    "bootloader": "first disk read -> kernel entry (the loader's last read)",
    "fw_setup": "fw_start -> fw_do_boot (hardware setup)",
    "fw_load": "fw_do_boot -> kernel entry (loading it)",
    "kernel": "kernel entry -> init_start",
    "k_decomp": "  kernel entry -> linux_start_kernel",
    "k_init": "  linux_start_kernel -> linux_start_user",
    "k_exec": "  linux_start_user -> init_start",
    "k_efi": "  kernel entry -> the firmware's exit from boot services (EFI stub)",
    "init": "init_start -> payload_start",
    "modules": "init_start -> init_modules_loaded",
    "root": "-> init_root_mounted",
    "payload": "payload_start -> payload_end",
    "initrd": "init_start -> the image's init (our init: modules, root)",
    "to_systemd": "the image's init -> systemd's start (its generators; the image's initrd where it has its own)",
    "sysinit": "the image's init -> sysinit.target",
    "basic": "sysinit.target -> basic.target",
    "multi_user": "basic.target -> multi-user.target",
    "userspace": "the image's init -> systemd's boot finished",
    "to_multi_user": "host exec -> multi-user.target",
    "to_init": "host exec -> init_start",
    "service_ready": "host exec -> the service's first answer (host clock)",
    "service": "payload_start (or the image's init) -> the service's first answer",
    "restore": "host exec -> the restored guest runs again (QMP RESUME)",
    "after_restore": "resumed -> payload_end",
    "total": "host exec -> QEMU exit",
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def payload_probe_lines(summary: dict[str, Any]) -> list[str]:
    own = payload_probes(summary)
    if not own:
        return []
    lines = ["payload probes (ms from QEMU exec):"]
    for name, s in own.items():
        ci = s["ci95_median"]
        lines.append(f"  {name:<20} median {s['median']:.1f}  "
                     f"{f'CI {ci[0]:.1f}-{ci[1]:.1f}' if ci else '(n<3)'}  min {s['min']:.1f}  max {s['max']:.1f}  "
                     f"n {s['n']}")
    return lines


def instruction_lines(summary: dict[str, Any]) -> list[str]:
    """The instruction clock's phases (millions of guest instructions) with their spread
    (p90/p10 is what the gate's threshold is set against: docs/MEASUREMENT.md)."""
    phases = summary.get(Unit.INSTRUCTIONS.phases_key) or {}
    if not phases:
        return []
    lines = ["phases in guest instructions (millions; the instruction clock):"]
    for phase in PHASE_NAMES:
        s = phases.get(phase)
        if s is None:
            continue
        spread = f"{(s['max'] - s['min']) / s['median'] * 100:.4f}%" if s["median"] else "-"
        lines.append(f"  {phase:<13} median {s['median'] / 1e6:14.3f}  min {s['min'] / 1e6:14.3f}  "
                     f"max {s['max'] / 1e6:14.3f}  range {spread:>9}  n {s['n']}")
    return lines


def systemd_lines(summary: dict[str, Any]) -> list[str]:
    """systemd's own view (systemd-analyze, the guest's clock) beside the host's phases."""
    view = summary.get("systemd")
    if not view:
        return []
    lines = [f"systemd's own view (systemd-analyze, the guest's clock; medians of {view['n']} boots):"]
    lines.append("  startup: " + " + ".join(f"{part} {ms:.1f}" for part, ms in view["startup_ms"].items()))
    for row in view["against_host"]:
        difference = row["host_ms"] - row["systemd_ms"]
        lines.append(f"  {row['what']:<10} systemd {row['systemd_ms']:9.1f}  host {row['host_ms']:9.1f}  "
                     f"difference {difference:+8.1f}  (host: {row['host_span']})")
        parts = row["because"]
        if parts:
            lines.append("    of which " + ", ".join(f"{part} {ms:+.1f}" for part, ms in parts.items())
                         + f"; left: {difference - sum(parts.values()):+.1f}")
    if view["slowest"]:
        lines.append("  slowest units (blame): " + ", ".join(f"{u['unit']} {u['ms']:.0f}" for u in view["slowest"]))
    if view["failed"]:
        lines.append("  failed units: " + ", ".join(view["failed"]))
    return lines


def phase_table(summary: dict[str, Any]) -> str:
    """Per-run phase statistics, then per-probe medians, RSS and the runner's overhead."""
    width = max([9, *(len(p) for p in summary["phases"])])  # service_ready is the longest name
    header = (f"{'phase':<{width}} {'median':>9} {'95% CI of median':>19} {'mean':>9} {'stddev':>8} "
              f"{'min':>9} {'max':>9} {'n':>3}  span")
    lines = [header, "-" * len(header)]
    for phase in PHASE_NAMES:
        s = summary["phases"].get(phase)
        if s is None:
            continue
        ci = s["ci95_median"]
        ci_text = f"{ci[0]:.1f}-{ci[1]:.1f}" if ci else "(n<3)"
        lines.append(f"{phase:<{width}} {_ms(s['median']):>9} {ci_text:>19} {_ms(s['mean']):>9} {_ms(s['stddev']):>8} "
                     f"{_ms(s['min']):>9} {_ms(s['max']):>9} {s['n']:>3}  {PHASE_HELP[phase]}")
    lines += instruction_lines(summary)
    lines += payload_probe_lines(summary)
    lines += systemd_lines(summary)
    by_phase = {phase: s["outliers"] for phase, s in summary["phases"].items() if s["outliers"]}
    if by_phase:  # per phase: a run can be an outlier in one phase and ordinary in the others
        lines.append("outliers by phase (Tukey fences, kept in the statistics; counted runs, from 0): " + "; ".join(
            f"{phase} {', '.join(map(str, found))}" for phase, found in by_phase.items()))
    rss, overhead = summary.get("qemu_max_rss_kib"), summary.get("runner_overhead_ms")
    if rss:
        lines.append(f"QEMU max RSS: median {rss['median'] / 1024:.1f} MiB")
    if overhead:
        lines.append(f"runner overhead per boot (host time outside QEMU): median {overhead['median']:.1f} ms")
    uart = summary.get("uart_us_per_char")
    if uart:
        lines.append(f"console cost: median {uart['median']:.1f} us per character")
    memory = summary.get("guest_memory_kib")
    if memory:
        lines.append("guest memory (profiled, median MiB, as free(1)): " + "; ".join(
            f"{stage} used {m['used_kib'] / 1024:.1f} free {m['MemFree'] / 1024:.1f} "
            f"available {m['MemAvailable'] / 1024:.1f}" for stage, m in memory.items()))
    lines.append("times in ms")
    return "\n".join(lines)
