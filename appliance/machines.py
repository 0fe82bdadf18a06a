"""QEMU machines: each one's shape as data (its QEMU arguments, command-line words,
virtio transport and architecture), shared by bundles and the runner."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Arch(enum.StrEnum):
    """Guest architectures: each has its QEMU, its Debian architecture, its cross tools."""

    X86_64 = "x86_64"
    AARCH64 = "aarch64"

    @property
    def debian(self) -> str:
        return {"x86_64": "amd64", "aarch64": "arm64"}[self.value]

    @property
    def qemu(self) -> str:
        return f"qemu-system-{self.value}"

    @property
    def cross_prefix(self) -> str:
        """The GNU tools' prefix on an x86_64 build host ("" for the host's own)."""
        return "" if self is Arch.X86_64 else f"{self.value}-linux-gnu-"


class Accel(enum.StrEnum):
    """How QEMU runs the guest: KVM (the host's CPU) or TCG (QEMU translates every
    instruction; what the instruction clock counts)."""

    KVM = "kvm"
    TCG = "tcg"


class Machine(enum.StrEnum):
    """The QEMU machines the runner knows how to start."""

    MICROVM = "microvm"
    Q35_QBOOT = "q35-qboot"
    PC_SEABIOS = "pc-seabios"
    Q35_OVMF = "q35-ovmf"
    VIRT = "virt"  # aarch64


@dataclass(frozen=True)
class MachineShape:
    machine: Machine
    qemu_args: tuple[str, ...]  # -M and friends
    cmdline: str  # what the kernel needs on this machine, before the template's own
    virtio_transport: str  # the kernel driver its virtio devices (disks, consoles) sit on
    arch: Arch = Arch.X86_64


# reboot=t: a reboot is a triple fault, which QEMU always sees as a reset (and -no-reboot
# turns into an exit). Left to its default, Linux tries the ACPI reset and, when that
# does not take, falls back to jumping into the firmware, which boots the kernel again:
# seen on microvm under TCG as an occasional endless reboot ("Probing EDD" after
# "reboot: machine restart").
COMMON = "reboot=t"


SHAPES: dict[Machine, MachineShape] = {
    # microvm: no PCI bus, ISA serial console, direct kernel load through fw_cfg DMA.
    Machine.MICROVM: MachineShape(Machine.MICROVM, ("-M", "microvm"), f"console=ttyS0 pci=off {COMMON}", "virtio_mmio"),
    # q35 with the qboot built here (firmware/) as -bios: probes from the firmware itself.
    Machine.Q35_QBOOT: MachineShape(Machine.Q35_QBOOT, ("-M", "q35"), f"console=ttyS0 {COMMON}", "virtio_pci"),
    # pc: the classic i440fx machine with its default firmware, SeaBIOS: the slow baseline.
    Machine.PC_SEABIOS: MachineShape(Machine.PC_SEABIOS, ("-M", "pc"), f"console=ttyS0 {COMMON}", "virtio_pci"),
    # q35 with Debian's OVMF (UEFI) in pflash: it boots the bundle's UKI (uki.efi) when it
    # has one, else the kernel through its EFI stub; its phases are inferred from the trace.
    Machine.Q35_OVMF: MachineShape(Machine.Q35_OVMF, ("-M", "q35"), f"console=ttyS0 {COMMON}", "virtio_pci"),
    # virt (aarch64): PL011 console, virtio-mmio transports, the device tree from the
    # bundle (board.dtb). GICv3 named, not left to the accelerator's default, so the
    # tree dumped at build time is the machine a KVM host gets too.
    Machine.VIRT: MachineShape(Machine.VIRT, ("-M", "virt,gic-version=3"), "console=ttyAMA0", "virtio_mmio", Arch.AARCH64),
}


def machines_of(arch: Arch) -> list[Machine]:
    return [m for m, p in SHAPES.items() if p.arch is arch]


TRANSPORTS = ("virtio_mmio", "virtio_pci")


def shape(machine: Machine) -> MachineShape:
    return SHAPES[machine]


def transport_problem(carried: tuple[str, ...], uses_virtio: bool, machine: Machine) -> str | None:
    """Why a bundle whose kernel CARRIED these virtio transports cannot reach its disks
    or network on MACHINE, or None: its virtio devices need the machine's transport, and
    a bundle built for microvm may carry only virtio_mmio."""
    if not uses_virtio:
        return None
    needed = shape(machine).virtio_transport
    if needed in carried:
        return None
    return (f"its virtio devices sit on {needed} on {machine.value}, and this bundle's kernel and modules only have "
            f"{', '.join(carried) or 'no virtio transport'}: build it for that machine "
            f"(scons appliance MACHINE={machine.value})")


CMDLINE_MAX = 2047  # COMMAND_LINE_SIZE (2048 on x86 and arm64) less its NUL: longer lines hang or are cut


def cmdline_problem(cmdline: str) -> str | None:
    """Why the kernel cannot take CMDLINE as it is, or None."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in cmdline):
        bad = next(c for c in cmdline if ord(c) < 0x20 or ord(c) == 0x7F)
        return f"the kernel command line has a control character ({bad!r}): words are separated by spaces"
    size = len(cmdline.encode())
    if size > CMDLINE_MAX:
        return f"the kernel command line is {size} bytes; the kernel takes at most {CMDLINE_MAX}"
    return None
