"""QEMU machine profiles: the VM's shape as data, shared by bundles and the runner."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Machine


@dataclass(frozen=True)
class Profile:
    machine: Machine
    qemu_args: tuple[str, ...]  # -M and friends
    cmdline: str  # what the kernel needs on this machine, before the template's own


PROFILES: dict[Machine, Profile] = {
    # microvm: no PCI bus, ISA serial console, direct kernel load through fw_cfg DMA.
    Machine.MICROVM: Profile(Machine.MICROVM, ("-M", "microvm"), "console=ttyS0 pci=off"),
    # q35 with the qboot built here (firmware/) as -bios: probes from the firmware itself.
    Machine.Q35_QBOOT: Profile(Machine.Q35_QBOOT, ("-M", "q35"), "console=ttyS0"),
    # pc: the classic i440fx machine with its default firmware, SeaBIOS: the slow baseline.
    Machine.PC_SEABIOS: Profile(Machine.PC_SEABIOS, ("-M", "pc"), "console=ttyS0"),
}


def profile(machine: Machine) -> Profile:
    return PROFILES[machine]
