"""The probe protocol (docs/CONTRACTS.md) and the parsers that turn QEMU output into events.

An event is (name, host_time_ns, source). The trace channel reads QEMU's own
timestamped `memory_region_ops_write` lines; two events are inferred from the same
trace when no firmware probe exists (stock SeaBIOS or qboot): `fw_entry`, the first
I/O write of a vCPU, and `kernel_entry`, the firmware's last fw_cfg write (the end of
loading the kernel) before the guest's first probe. Inferred events carry the source
"trace-inferred" so nobody mistakes them for real probes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PORT_KERNEL = 0xF4
PORT_FIRMWARE = 0xF5
# aarch64 has no I/O ports: the port-0xf4 codes are 32-bit writes to this register of
# QEMU virt's lowest virtio-mmio transport (never given a device; it ignores writes),
# which QEMU's write trace names 'virtio-mmio' (recipes/programs/probe.h).
PROBE_MMIO = 0x0A0000FC


@dataclass(frozen=True)
class Probe:
    port: int
    code: int
    name: str


PROBES: tuple[Probe, ...] = (
    Probe(PORT_FIRMWARE, 1, "fw_start"),
    Probe(PORT_FIRMWARE, 5, "fw_do_boot"),
    Probe(PORT_KERNEL, 2, "linux_start_fwcfg"),
    Probe(PORT_KERNEL, 3, "linux_start_boot"),
    Probe(PORT_KERNEL, 4, "linux_start_pvhboot"),
    Probe(PORT_KERNEL, 6, "linux_start_kernel"),
    Probe(PORT_KERNEL, 7, "linux_start_user"),
    Probe(PORT_KERNEL, 0x10, "init_start"),
    Probe(PORT_KERNEL, 0x11, "init_modules_loaded"),
    Probe(PORT_KERNEL, 0x12, "init_root_mounted"),
    Probe(PORT_KERNEL, 0x13, "payload_start"),
    Probe(PORT_KERNEL, 0x14, "payload_end"),
    Probe(PORT_KERNEL, 0x15, "init_net_up"),  # our init, network interfaces configured ([network])
    # an image booted with its own init ([image] init = "image", docs/TEMPLATES.md)
    Probe(PORT_KERNEL, 0x16, "image_init"),  # our init execs the image's /sbin/init (systemd)
    Probe(PORT_KERNEL, 0x17, "sysinit_target"),  # systemd reached sysinit.target (a unit we add fires it)
    Probe(PORT_KERNEL, 0x18, "basic_target"),
    Probe(PORT_KERNEL, 0x19, "multi_user_target"),
    Probe(PORT_KERNEL, 0x1A, "systemd_finished"),  # systemd says the boot is over (is-system-running --wait)
    Probe(PORT_KERNEL, 0x1B, "systemd_start"),  # systemd runs its generators: it has started (a generator we add)
)
USER_CODES = range(0x20, 0x80)
# moments read from the trace where no probe gives them ("loader_entry": the firmware's
# first disk read, on a bundle booted by its boot loader from a disk; "efi_exit": the
# firmware leaving boot services, when it resets the disks it drove)
INFERRED = ("fw_entry", "loader_entry", "kernel_entry", "efi_exit")
BUILTIN_NAMES = frozenset(p.name for p in PROBES) | frozenset(INFERRED)


@dataclass(frozen=True)
class Event:
    name: str
    host_time_ns: int  # CLOCK_REALTIME, as QEMU's trace timestamps are
    source: str


def unit_probe(unit: str) -> str:
    """The probe a systemd unit named in [image] units fires once it has started: its
    name with every character a probe name cannot hold as '_' ("ssh.service" -> "ssh_service")."""
    return re.sub(r"[^A-Za-z0-9_]", "_", unit)


def probe_table(user: tuple[tuple[int, str], ...] = ()) -> dict[tuple[int, int], str]:
    """(port, code) -> name, the standard probes plus a template's user-defined ones."""
    table = {(p.port, p.code): p.name for p in PROBES}
    for code, name in user:
        if code not in USER_CODES:
            raise ValueError(f"user probe {name} has code {code:#x}, outside 0x20-0x7f")
        table[(PORT_KERNEL, code)] = name
    return table


_TRACE_LINE = re.compile(
    r"^\d+@(?P<sec>\d+)\.(?P<usec>\d{6}):memory_region_ops_write cpu (?P<cpu>-?\d+) mr \S+ "
    r"addr (?P<addr>0x[0-9a-f]+) value (?P<value>0x[0-9a-f]+) size \d+ name '(?P<name>[^']*)'"
)


def parse_trace(text: str, table: dict[tuple[int, int], str], firmware: bool = True, infer: bool = True) -> list[Event]:
    """Events from a QEMU `-trace memory_region_ops_write -msg timestamp=on` log (and
`-trace virtio_blk_handle_read` where a boot loader reads the kernel from a disk).

    Without FIRMWARE (aarch64 virt: QEMU loads the kernel and jumps into it), the
    guest's first write is the kernel's, and is inferred as kernel_entry. Without
    INFER (a restored guest: no firmware or kernel start happened), nothing is inferred."""
    probes: list[Event] = []
    first_io: int | None = None
    fwcfg_writes: list[int] = []
    reads: list[int] = []
    resets: list[int] = []
    for line in text.splitlines():
        match = _TRACE_LINE.match(line)
        if match is None:
            read = _READ_LINE.match(line)
            if read is not None:
                reads.append((int(read["sec"]) * 1_000_000 + int(read["usec"])) * 1000)
            continue
        when = (int(match["sec"]) * 1_000_000 + int(match["usec"])) * 1000
        if int(match["cpu"]) < 0:
            continue  # QEMU itself (reset handlers), not the guest
        if first_io is None:
            first_io = when
        region = match["name"]
        if region.startswith("fwcfg"):
            fwcfg_writes.append(when)
        elif _virtio_reset(region, int(match["addr"], 16), int(match["value"], 16)):
            resets.append(when)
        elif region in ("isa-debugcon", "isa-debug-exit") or (region == "virtio-mmio" and
                                                                 int(match["addr"], 16) == PROBE_MMIO):
            port = PORT_KERNEL if region == "virtio-mmio" else int(match["addr"], 16)
            key = (port, int(match["value"], 16))
            name = table.get(key, f"unknown_{key[0]:#x}_{key[1]:#x}")
            probes.append(Event(name, when, "trace"))
    if not infer:
        return probes
    if not firmware:
        inferred = [Event("kernel_entry", first_io, "trace-inferred")] if first_io is not None else []
        return sorted(probes + inferred, key=lambda e: e.host_time_ns)
    return _with_inferred(probes, first_io, fwcfg_writes, reads, resets)


def _virtio_reset(region: str, addr: int, value: int) -> bool:
    """Whether a write resets a virtio PCI device: 0 into its device status, at 0x12 of
    the legacy I/O BAR ('virtio-pci') or 0x14 of the modern common configuration."""
    if value != 0:
        return False
    return (region == "virtio-pci" and addr & 0xFF == 0x12) or (region.startswith("virtio-pci-common")
                                                                and addr == 0x14)


def _with_inferred(probes: list[Event], first_io: int | None, fwcfg: list[int], reads: list[int],
                   resets: list[int]) -> list[Event]:
    """Add fw_entry and kernel_entry where no real firmware probe gives those moments.

    The kernel's entry is the end of its loading: the firmware's last fw_cfg write before
    the guest's first probe; where the disk reads were traced (a boot loader's disk), the
    last disk read before it instead, and the first disk read is loader_entry. The
    kernel reads no disk before its first probe (start_kernel, or our init's start, which
    loads the disk's driver), so every read before it is the firmware's or the loader's.
    After the last read, the firmware's reset of the disks is efi_exit: the end of boot
    services, where the kernel's EFI stub takes the machine over."""
    names = {e.name for e in probes}
    inferred: list[Event] = []
    if first_io is not None and "fw_start" not in names:
        inferred.append(Event("fw_entry", first_io, "trace-inferred"))
    if not names & {"linux_start_boot", "linux_start_pvhboot", "linux_start_fwcfg"}:
        guest = [e.host_time_ns for e in probes if e.name not in ("fw_start", "fw_do_boot")]
        loads = sorted(reads) if reads else fwcfg
        before = [t for t in loads if not guest or t < min(guest)]
        if reads and before:
            inferred.append(Event("loader_entry", before[0], "trace-inferred"))
            # OVMF resets each virtio disk it drove when boot services end (the kernel's
            # EFI stub calls ExitBootServices): the first reset after the loader's last
            # read (a kernel with virtio_pci built in resets them again later)
            exits = [t for t in resets if before[-1] < t and (not guest or t < min(guest))]
            if exits:
                inferred.append(Event("efi_exit", exits[0], "trace-inferred"))
        if before:
            inferred.append(Event("kernel_entry", before[-1], "trace-inferred"))
    return sorted(probes + inferred, key=lambda e: e.host_time_ns)


_READ_LINE = re.compile(r"^\d+@(?P<sec>\d+)\.(?P<usec>\d{6}):virtio_blk_handle_read ")


_CONSOLE_PROBE = re.compile(r"appliance-probe: (?P<name>[A-Za-z0-9_]+) (?P<ns>\d+)\s*$")


def parse_console_probes(text: str) -> list[tuple[str, int]]:
    """Guest-side probe times: (name, CLOCK_BOOTTIME ns) from `appliance-probe:` lines."""
    out = []
    for line in text.splitlines():
        match = _CONSOLE_PROBE.search(line)
        if match:
            out.append((match["name"], int(match["ns"])))
    return out
