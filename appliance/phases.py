"""Derive boot phases from one run's events.

Each phase runs from the first present of its start candidates to the first present of
its end candidates. A missing probe leaves its phase missing (None): nothing is ever
shifted onto another probe.
"""

from __future__ import annotations

from .probes import Event

EXEC = "qemu_exec"  # host: immediately before QEMU is started
EXIT = "qemu_exit"  # host: QEMU reaped

FIRMWARE_START = ("fw_start", "fw_entry")
KERNEL_START = ("linux_start_boot", "linux_start_pvhboot", "linux_start_fwcfg", "kernel_entry")

PHASES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("qemu", (EXEC,), FIRMWARE_START + KERNEL_START + ("linux_start_kernel", "init_start")),
    ("firmware", FIRMWARE_START, KERNEL_START),
    ("kernel", KERNEL_START + ("linux_start_kernel",), ("init_start",)),
    ("init", ("init_start",), ("payload_start",)),
    ("payload", ("payload_start",), ("payload_end",)),
    ("to_init", (EXEC,), ("init_start",)),
    ("total", (EXEC,), (EXIT,)),
)
PHASE_NAMES = tuple(name for name, _, _ in PHASES)


def _first(times: dict[str, int], candidates: tuple[str, ...]) -> int | None:
    for name in candidates:
        if name in times:
            return times[name]
    return None


def derive(events: list[Event]) -> dict[str, float | None]:
    """Phase durations in milliseconds (None where a needed probe is missing)."""
    times: dict[str, int] = {}
    for event in events:
        times.setdefault(event.name, event.host_time_ns)  # a repeated probe: keep the first
    phases: dict[str, float | None] = {}
    for name, starts, ends in PHASES:
        start, end = _first(times, starts), _first(times, ends)
        phases[name] = None if start is None or end is None or end < start else (end - start) / 1e6
    return phases
