"""A Unified Kernel Image: one EFI program holding the kernel, its initrd and command line.

systemd's EFI stub (Debian's systemd-boot-efi) with the parts added as PE sections
(`.osrel`, `.cmdline`, `.linux`, `.initrd`), as systemd documents it: objcopy adds each
section at a virtual address past the stub's own sections, aligned. UEFI firmware (OVMF)
runs it as any EFI program; the stub hands the kernel its initrd and command line (a
command line the firmware passes, e.g. QEMU's -append, replaces the built-in one when
Secure Boot is off). The same inputs give the same bytes: objcopy stamps the PE header
with the time it ran (it ignores SOURCE_DATE_EPOCH for PE), so the stamp is set to the
build's SOURCE_DATE_EPOCH afterwards and the PE checksum computed again.
"""

from __future__ import annotations

import array
import struct
import tempfile
from pathlib import Path

from appliance import proc
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
ALIGN = 4096  # a page: more than the stub's SectionAlignment, and what the kernel section wants
SECTIONS = (".osrel", ".cmdline", ".linux", ".initrd")


def stub_end(objdump_h: str) -> int:
    """The first virtual address past the stub's sections, from `objdump -h` output."""
    end = 0
    for line in objdump_h.splitlines():
        fields = line.split()
        if len(fields) == 7 and fields[0].isdigit():
            end = max(end, int(fields[3], 16) + int(fields[2], 16))
    if not end:
        raise ApplianceError("the EFI stub has no sections objdump can read: reinstall systemd-boot-efi")
    return end


def place(end: int, sizes: list[int], align: int = ALIGN) -> list[int]:
    """Virtual addresses for sections of SIZES after END, each aligned to ALIGN."""
    out, at = [], end
    for size in sizes:
        at = (at + align - 1) // align * align
        out.append(at)
        at += size
    return out


def osrel(name: str, release: str) -> str:
    """The image's os-release: what boot menus show for it."""
    return f'NAME="appliance"\nID=appliance\nVERSION_ID="{release}"\nPRETTY_NAME="appliance {name} ({release})"\n'


def pe_checksum(data: bytes, field: int) -> int:
    """The PE image checksum: 16-bit words summed with end-around carry (the checksum
    field itself counted as zero), plus the file's length."""
    padded = bytearray(data) + (b"\0" if len(data) % 2 else b"")
    padded[field:field + 4] = bytes(4)
    total = sum(array.array("H", padded))  # little-endian hosts: the words as PE reads them
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


def restamp(image: bytes, epoch: int) -> bytes:
    """IMAGE with its COFF time stamp set to EPOCH and its PE checksum made right again."""
    data = bytearray(image)
    header = struct.unpack_from("<I", data, 0x3C)[0]  # e_lfanew: where "PE\0\0" starts
    struct.pack_into("<I", data, header + 8, epoch & 0xFFFFFFFF)  # COFF TimeDateStamp
    field = header + 24 + 64  # the optional header's CheckSum
    struct.pack_into("<I", data, field, pe_checksum(bytes(data), field))
    return bytes(data)


def build(kernel: Path, initrd: Path, cmdline: str, *, release_text: str, out: Path, epoch: int = 0,
          stub: Path = STUB) -> None:
    """Write the UKI of KERNEL, INITRD and CMDLINE to OUT (atomically), stamped EPOCH."""
    if not stub.is_file():
        raise ApplianceError(f"no EFI stub at {stub}: apt-get install systemd-boot-efi (./setup does)")
    with tempfile.TemporaryDirectory(prefix="appliance-uki-") as tmp:
        folder = Path(tmp)
        (folder / "osrel").write_text(release_text)
        (folder / "cmdline").write_text(cmdline)
        parts = [folder / "osrel", folder / "cmdline", kernel, initrd]
        end = stub_end(proc.run(["objdump", "-h", str(stub)], timeout=60).stdout)
        addresses = place(end, [p.stat().st_size for p in parts])
        args = []
        for section, part, address in zip(SECTIONS, parts, addresses, strict=True):
            args += ["--add-section", f"{section}={part}", "--change-section-vma", f"{section}={address:#x}"]
        made = folder / "uki.efi"
        proc.run(["objcopy", *args, str(stub), str(made)], timeout=120)
        atomic_write(out, restamp(made.read_bytes(), epoch))
