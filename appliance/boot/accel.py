"""Choosing the accelerator: KVM when it really works, TCG otherwise.

`/dev/kvm` existing is not enough: a nested or paravirtualized KVM can accept a guest
and then hang it as soon as it leaves real mode. So the check boots a 64 KiB probe
firmware (kvmprobe.S) that goes real -> protected -> long mode with paging, as Linux
does, and writes to an isa-debug-exit port. QEMU exiting with status 85 within the
timeout means KVM works.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appliance import proc
from appliance.errors import ToolTimedOut
from appliance.machines import Accel

# Bytes of kvmprobe.S (gcc -c; ld -Ttext=0xf0000 --oformat binary): its code at the
# start of the ROM, the reset vector's far jump at 0xfff0, zeros elsewhere.
_CODE = bytes.fromhex(
    "fa31c08ed82e660f0116b0000f20c06683c8010f22c066ea1e000f00080066b810008ed88ec08ed0bf00"
    "10000031c0b9000c0000f3abc7050010000003200000c7050020000003300000c7050030000083000000"
    "b8001000000f22d80f20e083c8200f22e0b9800000c00f320d000100000f300f20c00d000000800f22c0"
    "ea85000f001800b02ae6f4f4ebfd8db400000000000000000000ffff0000009acf00ffff00000092cf00"
    "ffff0000009aaf001f0090000f"
)
_RESET = bytes.fromhex("ea000000f0")
PROBE_EXIT = (0x2A << 1) | 1  # isa-debug-exit turns value v into exit status (v << 1) | 1


def probe_rom() -> bytes:
    rom = bytearray(65536)
    rom[: len(_CODE)] = _CODE
    rom[0xFFF0: 0xFFF0 + len(_RESET)] = _RESET
    return bytes(rom)


@dataclass(frozen=True)
class AccelChoice:
    accel: Accel
    reason: str  # why: shown to the user and stored in results

    def __post_init__(self) -> None:
        object.__setattr__(self, "accel", Accel(self.accel))  # a plain "tcg" (a worker's record) becomes Accel.TCG


def kvm_works(qemu: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Whether KVM runs a long-mode guest here, and if not, why."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm (KVM module not loaded, or not a KVM-capable host)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no permission on /dev/kvm (add yourself to the kvm group)"
    with tempfile.TemporaryDirectory(prefix="appliance-kvmprobe-") as tmp:
        rom = Path(tmp) / "probe.bin"
        rom.write_bytes(probe_rom())
        argv = [qemu, "-nodefaults", "-no-user-config", "-display", "none", "-M", "pc", "-accel", "kvm",
                "-m", "16", "-bios", str(rom), "-device", "isa-debug-exit,iobase=0xf4,iosize=1"]
        try:
            done = proc.run(argv, timeout=timeout, check=False)
        except ToolTimedOut:  # the gateway kills the child at its deadline
            return False, f"/dev/kvm is present but a long-mode guest hung for {timeout:g} s (nested or paravirtual KVM?)"
    if done.returncode == PROBE_EXIT:
        return True, "KVM runs a long-mode probe guest"
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return False, f"QEMU could not start a KVM guest (exit {done.returncode}: {last})"


def choose(requested: str) -> AccelChoice:
    """Resolve --accel auto|kvm|tcg; `auto` falls back to TCG when KVM does not work."""
    if requested == Accel.TCG:
        return AccelChoice(Accel.TCG, "requested")
    from appliance.boot.qemu import binary
    from appliance.machines import Arch

    works, why = kvm_works(binary(Arch.X86_64))  # the probe guest is x86 code
    if works:
        return AccelChoice(Accel.KVM, why)
    if requested == Accel.KVM:
        from appliance.errors import ApplianceError

        raise ApplianceError(f"--accel kvm: KVM is not usable: {why}; use --accel tcg or auto")
    return AccelChoice(Accel.TCG, f"KVM unusable: {why}")
