"""QEMU machine profiles: the VM's shape as data, shared by bundles and the runner."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Machine(enum.Enum):
    """QEMU machine profiles the runner knows how to start."""

    MICROVM = "microvm"
    Q35_QBOOT = "q35-qboot"
    PC_SEABIOS = "pc-seabios"


@dataclass(frozen=True)
class Profile:
    machine: Machine
    qemu_args: tuple[str, ...]  # -M and friends
    cmdline: str  # what the kernel needs on this machine, before the template's own


# reboot=t: a reboot is a triple fault, which QEMU always sees as a reset (and -no-reboot
# turns into an exit). Left to its default, Linux tries the ACPI reset and, when that
# does not take, falls back to jumping into the firmware, which boots the kernel again:
# seen on microvm under TCG as an occasional endless reboot ("Probing EDD" after
# "reboot: machine restart").
COMMON = "reboot=t"


PROFILES: dict[Machine, Profile] = {
    # microvm: no PCI bus, ISA serial console, direct kernel load through fw_cfg DMA.
    Machine.MICROVM: Profile(Machine.MICROVM, ("-M", "microvm"), f"console=ttyS0 pci=off {COMMON}"),
    # q35 with the qboot built here (firmware/) as -bios: probes from the firmware itself.
    Machine.Q35_QBOOT: Profile(Machine.Q35_QBOOT, ("-M", "q35"), f"console=ttyS0 {COMMON}"),
    # pc: the classic i440fx machine with its default firmware, SeaBIOS: the slow baseline.
    Machine.PC_SEABIOS: Profile(Machine.PC_SEABIOS, ("-M", "pc"), f"console=ttyS0 {COMMON}"),
}


def profile(machine: Machine) -> Profile:
    return PROFILES[machine]
