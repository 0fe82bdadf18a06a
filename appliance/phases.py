"""Derive boot phases from one run's events.

Each phase runs from the first present of its start candidates to the first present of
its end candidates. A missing probe leaves its phase missing (None): nothing is ever
shifted onto another probe.
"""

from __future__ import annotations

from collections.abc import Collection

from appliance.probes import BUILTIN_NAMES, Event

EXEC = "qemu_exec"  # host: immediately before QEMU is started
EXIT = "qemu_exit"  # host: QEMU reaped
READY = "service_ready"  # host: the service's first answer arrived (service bundles)
RESUMED = "vm_resumed"  # QMP's RESUME: a restored guest runs again (snapshot restores)
HOST_EVENTS = frozenset({EXEC, EXIT, READY, RESUMED})  # the host's own events, not guest probes


def payload_probe(name: str) -> bool:
    """Whether an event is a probe the payload fired itself ([probes], the `probe`
    program): neither one of ours (built in, or inferred from the trace) nor the host's."""
    return name not in BUILTIN_NAMES and name not in HOST_EVENTS

FIRMWARE_START = ("fw_start", "fw_entry")
KERNEL_START = ("linux_start_boot", "linux_start_pvhboot", "linux_start_fwcfg", "kernel_entry")

PHASES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("qemu", (EXEC,), FIRMWARE_START + KERNEL_START + ("linux_start_kernel",)),
    ("firmware", FIRMWARE_START, ("loader_entry",) + KERNEL_START),
    # a boot loader's disk ([vm] loader): the firmware's first read of it to the kernel's
    # entry (its last read before the kernel ran): finding and starting the loader, which
    # reads its entry, the kernel and the initrd
    ("bootloader", ("loader_entry",), KERNEL_START),
    ("fw_setup", ("fw_start",), ("fw_do_boot",)),
    ("fw_load", ("fw_do_boot",), KERNEL_START),
    ("kernel", KERNEL_START + ("linux_start_kernel",), ("init_start",)),
    # with the patched (minimal) kernel: the kernel phase in three
    ("k_decomp", KERNEL_START, ("linux_start_kernel",)),  # setup, decompression, early boot
    ("k_init", ("linux_start_kernel",), ("linux_start_user",)),  # start_kernel() to running init
    ("k_exec", ("linux_start_user",), ("init_start",)),  # exec of /init up to its main()
    # booted by a boot loader from a disk under OVMF: from the loader's last read to the
    # end of boot services (the loader starting the kernel, the kernel's EFI stub)
    ("k_efi", ("kernel_entry",), ("efi_exit",)),
    ("init", ("init_start",), ("payload_start",)),
    ("modules", ("init_start",), ("init_modules_loaded",)),
    ("root", ("init_modules_loaded", "init_start"), ("init_root_mounted",)),
    ("payload", ("payload_start",), ("payload_end",)),
    # an image's own init (systemd): our init in the initramfs up to its exec, then
    # systemd up to each target, and to the end of its boot (systemd-analyze's "userspace")
    ("initrd", ("init_start",), ("image_init",)),
    # our exec to systemd's start (its generators run): systemd loading itself, and the
    # image's own initrd where it boots with it ([image] initrd = "image")
    ("to_systemd", ("image_init",), ("systemd_start",)),
    ("sysinit", ("image_init",), ("sysinit_target",)),
    ("basic", ("sysinit_target",), ("basic_target",)),
    ("multi_user", ("basic_target",), ("multi_user_target",)),
    ("userspace", ("image_init",), ("systemd_finished",)),
    ("to_multi_user", (EXEC,), ("multi_user_target",)),
    ("to_init", (EXEC,), ("init_start",)),
    # service bundles: launch to the first answer, all on the host clock, and its share
    # after the payload started (the network's and the server's own start-up)
    ("service_ready", (EXEC,), (READY,)),
    ("service", ("payload_start", "image_init"), (READY,)),
    # snapshot restores: launch to the guest running again, then to the payload's end
    ("restore", (EXEC,), (RESUMED,)),
    ("after_restore", (RESUMED,), ("payload_end",)),
    ("total", (EXEC,), (EXIT,)),
)
PHASE_NAMES = tuple(name for name, _, _ in PHASES)


def _first(times: dict[str, float], candidates: tuple[str, ...]) -> float | None:
    name = _first_name(times, candidates)
    return None if name is None else times[name]


def _first_name(present: Collection[str], candidates: tuple[str, ...]) -> str | None:
    return next((name for name in candidates if name in present), None)


def in_instructions(names: Collection[str], counts: dict[str, int]) -> dict[str, int | None]:
    """One boot's phases in guest instructions: each phase between the same two events
    as its wall-clock phase (the first present of its candidates among the boot's event
    NAMES), from their instruction COUNTS; None where either has no count (a moment
    inferred from the trace, a service's answer)."""
    phases: dict[str, int | None] = {}
    for name, starts, ends in PHASES:
        start, end = _first_name(names, starts), _first_name(names, ends)
        if start in counts and end in counts and counts[end] >= counts[start]:
            phases[name] = counts[end] - counts[start]
        else:
            phases[name] = None
    if READY in names:  # as of_run: a service's payload runs until the host stops it
        phases["payload"] = phases["after_restore"] = None
    return phases


def derive(events: list[Event], anchored_only: bool = False) -> dict[str, float | None]:
    """Phase durations in milliseconds (None where a needed probe is missing).

    ANCHORED_ONLY keeps just the phases that start at QEMU's exec: for the exit channel,
    whose events come from different boots, a difference of two of them is no phase."""
    times: dict[str, float] = {}
    origin = events[0].host_time_ns if events else 0  # ms from the first event: epoch ms in a float lose 0.2 us
    for event in events:
        times.setdefault(event.name, (event.host_time_ns - origin) / 1e6)  # a repeated probe: keep the first
    return of_run(times, anchored_only)


def of_run(times: dict[str, float], anchored_only: bool = False) -> dict[str, float | None]:
    """One boot's phases from its probe times in ms (the first of each probe), as the
    runner derives them: with only the exec-anchored ones for the exit channel, and no
    payload phase for a service (its payload runs until the host stops it)."""
    phases = from_times(times)
    if anchored_only:
        anchored = {name for name, starts, _ in PHASES if starts == (EXEC,)}
        phases = {name: (value if name in anchored else None) for name, value in phases.items()}
    if READY in times:  # a service's payload (and a restored one's rest) runs until the host stops it
        phases["payload"] = phases["after_restore"] = None
    return phases


def from_times(times: dict[str, float], allow_negative: bool = False) -> dict[str, float | None]:
    """Phases from probe times in ms (any origin), e.g. from per-probe medians.

    ALLOW_NEGATIVE keeps end < start, for differences of biases rather than times."""
    phases: dict[str, float | None] = {}
    for name, starts, ends in PHASES:
        start, end = _first(times, starts), _first(times, ends)
        if start is None or end is None or (end < start and not allow_negative):
            phases[name] = None
        else:
            phases[name] = end - start
    return phases
