"""Plain-text tables of results, for the terminal."""

from __future__ import annotations

from typing import Any

from appliance.phases import PHASE_NAMES

PHASE_HELP = {
    "qemu": "host exec -> firmware start (aarch64: the kernel's first device write)",
    "firmware": "firmware -> kernel entry",
    "fw_setup": "fw_start -> fw_do_boot (hardware setup)",
    "fw_load": "fw_do_boot -> kernel entry (loading it)",
    "kernel": "kernel entry -> init_start",
    "k_decomp": "  kernel entry -> linux_start_kernel",
    "k_init": "  linux_start_kernel -> linux_start_user",
    "k_exec": "  linux_start_user -> init_start",
    "init": "init_start -> payload_start",
    "modules": "init_start -> init_modules_loaded",
    "root": "-> init_root_mounted",
    "payload": "payload_start -> payload_end",
    "to_init": "host exec -> init_start",
    "service_ready": "host exec -> the service's first answer (host clock)",
    "service": "payload_start -> the service's first answer",
    "restore": "host exec -> the restored guest runs again (QMP RESUME)",
    "after_restore": "resumed -> payload_end",
    "total": "host exec -> QEMU exit",
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


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
    outliers = sorted({i for s in summary["phases"].values() for i in s["outliers"]})
    if outliers:
        lines.append(f"outlier runs (Tukey fences, kept in the statistics): {', '.join(map(str, outliers))}")
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
