"""A disk that boots through a boot loader: a GPT disk image whose one partition is an
EFI System Partition (FAT) holding systemd-boot, its loader entry, the kernel and the
initrd, as a distribution's UEFI disk image does. OVMF finds the partition, runs
systemd-boot from the removable-media path (EFI/BOOT/BOOTX64.EFI), which reads its entry
and loads the kernel and initrd from the disk with the firmware's block I/O: the boot
loader's phase is real disk reads, not QEMU's fw_cfg.

The GPT is written here (one owner of the format: a protective MBR, the primary and
backup headers and entry arrays with their CRC32s); the FAT by dosfstools' mkfs.vfat
and mtools' mcopy, which write into an image file without mounting it (no root, no loop
device). The same inputs give the same bytes: the GUIDs come from the contents' digest
and the FAT's volume ID and every timestamp from SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from appliance import proc
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_path

SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")  # Debian's systemd-boot-efi
SECTOR = 512
PARTITION_START = 2048  # LBA of the ESP: 1 MiB in, as partitioning tools align it
ENTRIES = 128  # GPT partition entries of 128 bytes: 32 sectors, as the specification's minimum
ENTRY_SECTORS = ENTRIES * 128 // SECTOR
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
ENTRY = "loader/entries/appliance.conf"  # the loader entry; the runner rewrites its options line
# no menu (timeout 0 boots the default at once); no random seed written back to a
# read-only disk
LOADER_CONF = "timeout 0\ndefault appliance.conf\nrandom-seed-mode off\n"
FAT_EPOCH = 315532800  # 1980-01-01: FAT's timestamps start there (SOURCE_DATE_EPOCH=0 is clamped to it)
SLACK = 4 << 20  # room in the FAT beyond its files: directories, clusters' rounding


@dataclass(frozen=True)
class Layout:
    """Where the ESP lies in the disk image, in bytes."""

    offset: int
    size: int


def entry_text(cmdline: str) -> str:
    """The loader entry (systemd's Boot Loader Specification, type #1)."""
    return f"title appliance\nlinux /appliance/kernel\ninitrd /appliance/initrd\noptions {cmdline}\n"


def layout(esp_bytes: int) -> Layout:
    """The ESP's place in a disk holding ESP_BYTES of it (a whole number of sectors)."""
    return Layout(PARTITION_START * SECTOR, esp_bytes)


def esp_layout(disk: Path) -> Layout:
    """Where DISK's ESP lies, from its primary GPT (a disk this module wrote)."""
    with open(disk, "rb") as image:
        image.seek(SECTOR)
        header = image.read(92)
        if header[:8] != b"EFI PART":
            raise ApplianceError(f"{disk} has no GPT (no 'EFI PART' header): rebuild the bundle")
        entries_lba = struct.unpack_from("<Q", header, 72)[0]
        image.seek(entries_lba * SECTOR)
        entry = image.read(128)
    first, last = struct.unpack_from("<QQ", entry, 32)
    if uuid.UUID(bytes_le=entry[:16]) != ESP_TYPE:
        raise ApplianceError(f"{disk}'s first partition is not an EFI System Partition: rebuild the bundle")
    return Layout(first * SECTOR, (last - first + 1) * SECTOR)


def _guid(seed: bytes, what: str) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.sha256(seed + what.encode()).digest()[:16], version=4)


def gpt(total_sectors: int, esp: Layout, seed: bytes) -> tuple[bytes, bytes]:
    """(the disk's first PARTITION_START sectors: protective MBR, primary header and
    entries; its last 33: backup entries and header) for a disk of TOTAL_SECTORS with ESP."""
    last = total_sectors - 1
    first_lba, last_lba = esp.offset // SECTOR, (esp.offset + esp.size) // SECTOR - 1
    name = "EFI System Partition".encode("utf-16-le").ljust(72, b"\0")
    entry = ESP_TYPE.bytes_le + _guid(seed, "partition").bytes_le + struct.pack("<QQQ", first_lba, last_lba, 0) + name
    entries = entry.ljust(ENTRIES * 128, b"\0")
    entries_crc = zlib.crc32(entries)
    disk_guid = _guid(seed, "disk").bytes_le

    def header(current: int, backup: int, entries_at: int) -> bytes:
        fields = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, 0, 0, current, backup,
                             1 + 1 + ENTRY_SECTORS, last - 1 - ENTRY_SECTORS, disk_guid, entries_at, ENTRIES, 128,
                             entries_crc)
        crc = zlib.crc32(fields)
        return (fields[:16] + struct.pack("<I", crc) + fields[20:]).ljust(SECTOR, b"\0")

    mbr = bytearray(SECTOR)  # protective: one partition of type 0xEE over the whole disk
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, min(last, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    head = bytes(mbr) + header(1, last, 2) + entries
    head = head.ljust(esp.offset, b"\0")
    tail = entries + header(last, 1, last - ENTRY_SECTORS)
    return head, tail


def _fat(path: Path, files: dict[str, Path], size: int, epoch: int) -> None:
    """A FAT filesystem of SIZE bytes at PATH holding FILES (ESP path -> host file)."""
    epoch = max(epoch, FAT_EPOCH)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
    volume_id = f"{zlib.crc32(str(epoch).encode()) & 0xFFFFFFFF:08x}"
    proc.run(["mkfs.vfat", "--invariant", "-i", volume_id, "-n", "ESP", "-C", str(path), str(size // 1024)],
             env=env, timeout=120)
    folders = sorted({str(Path(dst).parent) for dst in files} - {"."}, key=lambda f: (f.count("/"), f))
    made: set[str] = set()
    for folder in folders:
        parts = Path(folder).parts
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub not in made:
                proc.run(["mmd", "-i", str(path), f"::/{sub}"], env=env, timeout=60)
                made.add(sub)
    for dst, src in files.items():
        os.utime(src, (epoch, epoch))  # mcopy -m keeps it: the same bytes from the same inputs
        proc.run(["mcopy", "-m", "-i", str(path), str(src), f"::/{dst}"], env=env, timeout=300)


def build(kernel: Path, initrd: Path, cmdline: str, out: Path, *, epoch: int = 0,
          loader: Path = SYSTEMD_BOOT) -> Layout:
    """Write to OUT (atomically) the GPT disk whose ESP boots KERNEL with INITRD and
    CMDLINE through systemd-boot; its ESP's layout."""
    for tool, package in (("mkfs.vfat", "dosfstools"), ("mcopy", "mtools")):
        if shutil.which(tool) is None:
            raise ApplianceError(f"a boot disk needs {tool}: apt-get install {package} (./setup does)")
    if not loader.is_file():
        raise ApplianceError(f"no systemd-boot at {loader}: apt-get install systemd-boot-efi (./setup does)")
    with tempfile.TemporaryDirectory(prefix="appliance-bootdisk-") as tmp:
        folder = Path(tmp)
        staged = {}
        texts = {"loader/loader.conf": LOADER_CONF, ENTRY: entry_text(cmdline)}
        for dst, text in texts.items():
            staged[dst] = folder / dst.replace("/", "_")
            staged[dst].write_text(text)
        for dst, src in (("EFI/BOOT/BOOTX64.EFI", loader), ("appliance/kernel", kernel), ("appliance/initrd", initrd)):
            staged[dst] = folder / dst.replace("/", "_")
            shutil.copyfile(src, staged[dst])
        content = sum(p.stat().st_size for p in staged.values())
        size = (content + content // 16 + SLACK + (1 << 20) - 1) >> 20 << 20  # whole MiB
        fat = folder / "esp.fat"
        _fat(fat, staged, size, epoch)
        esp = layout(size)
        seed = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in staged.values())).digest()
        total = PARTITION_START + size // SECTOR + 1 + ENTRY_SECTORS
        head, tail = gpt(total, esp, seed)
        with atomic_path(out) as tmp_out, open(tmp_out, "wb") as disk, open(fat, "rb") as source:
            disk.write(head)
            shutil.copyfileobj(source, disk, 1 << 20)
            disk.write(tail)
    return esp


def with_cmdline(disk: Path, cmdline: str, out: Path) -> None:
    """A copy of DISK at OUT whose loader entry boots with CMDLINE (a boot's own words:
    --append, the exit probe), the bundle's disk left as it was."""
    esp = esp_layout(disk)
    shutil.copyfile(disk, out)
    entry = out.with_name(out.name + ".entry")
    entry.write_text(entry_text(cmdline))
    try:
        proc.run(["mcopy", "-o", "-i", f"{out}@@{esp.offset}", str(entry), f"::/{ENTRY}"],
                 env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}, timeout=60)
    finally:
        entry.unlink(missing_ok=True)


def read_entry(disk: Path) -> str:
    """The loader entry DISK boots (mtools' mtype)."""
    esp = esp_layout(disk)
    return proc.run(["mtype", "-i", f"{disk}@@{esp.offset}", f"::/{ENTRY}"],
                    env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}, timeout=60).stdout
