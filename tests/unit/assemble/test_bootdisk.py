"""The boot loader's disk: a GPT disk whose ESP (FAT, by dosfstools and mtools) holds
systemd-boot, its entry, the kernel and the initrd; the same bytes from the same inputs,
and a boot's own command line written into a copy."""

import struct
import uuid
import zlib
from pathlib import Path

import pytest

from appliance.assemble import bootdisk
from appliance.errors import ApplianceError


@pytest.fixture
def parts(tmp_path):
    kernel, initrd, loader = tmp_path / "kernel", tmp_path / "initrd", tmp_path / "loader.efi"
    kernel.write_bytes(b"K" * 300_000)
    initrd.write_bytes(b"I" * 70_000)
    loader.write_bytes(b"MZ" + b"L" * 5000)
    return kernel, initrd, loader


def build(parts, out: Path, cmdline: str = "console=ttyS0 panic=-1", epoch: int = 0) -> bootdisk.Layout:
    kernel, initrd, loader = parts
    return bootdisk.build(kernel, initrd, cmdline, out, epoch=epoch, loader=loader)


def mtype(disk: Path, path: str) -> bytes:
    import subprocess

    esp = bootdisk.esp_layout(disk)
    return subprocess.run(["mtype", "-i", f"{disk}@@{esp.offset}", f"::/{path}"], capture_output=True, check=True,
                          env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}).stdout


def test_the_gpt_is_whole_and_its_esp_holds_the_loader_entry_kernel_and_initrd(parts, tmp_path):
    disk = tmp_path / "boot.img"
    esp = build(parts, disk)
    data = disk.read_bytes()
    assert data[510:512] == b"\x55\xaa" and data[446 + 4] == 0xEE  # protective MBR
    header = data[512:512 + 92]
    assert header[:8] == b"EFI PART"
    crc = struct.unpack_from("<I", header, 16)[0]
    assert zlib.crc32(header[:16] + bytes(4) + header[20:]) == crc
    entries = data[1024:1024 + 128 * 128]
    assert zlib.crc32(entries) == struct.unpack_from("<I", header, 88)[0]
    assert uuid.UUID(bytes_le=entries[:16]) == bootdisk.ESP_TYPE
    last = len(data) // 512 - 1
    backup = data[last * 512:last * 512 + 92]
    assert backup[:8] == b"EFI PART" and struct.unpack_from("<QQ", backup, 24) == (last, 1)
    assert data[(last - 32) * 512:last * 512] == entries  # the backup entries, before the backup header
    assert esp == bootdisk.esp_layout(disk) and esp.offset == 1 << 20 and esp.offset + esp.size + 33 * 512 == len(data)
    assert mtype(disk, "EFI/BOOT/BOOTX64.EFI") == parts[2].read_bytes()
    assert mtype(disk, "appliance/kernel") == parts[0].read_bytes()
    assert mtype(disk, "appliance/initrd") == parts[1].read_bytes()
    assert "timeout 0" in mtype(disk, "loader/loader.conf").decode()
    assert bootdisk.read_entry(disk) == bootdisk.entry_text("console=ttyS0 panic=-1")
    assert "options console=ttyS0 panic=-1\n" in bootdisk.read_entry(disk)


def test_the_same_inputs_give_the_same_bytes_and_another_epoch_others(parts, tmp_path):
    build(parts, tmp_path / "a.img")
    build(parts, tmp_path / "b.img")
    build(parts, tmp_path / "c.img", epoch=1_700_000_000)
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()
    assert (tmp_path / "a.img").read_bytes() != (tmp_path / "c.img").read_bytes()


def test_a_boots_own_command_line_goes_into_a_copy(parts, tmp_path):
    disk = tmp_path / "boot.img"
    build(parts, disk)
    before = disk.read_bytes()
    bootdisk.with_cmdline(disk, "console=ttyS0 panic=-1 appliance_exit_probe=work_done", tmp_path / "copy.img")
    assert disk.read_bytes() == before
    assert bootdisk.read_entry(tmp_path / "copy.img").endswith("options console=ttyS0 panic=-1 "
                                                                "appliance_exit_probe=work_done\n")
    assert not list(tmp_path.glob("*.entry"))


def test_a_disk_without_a_gpt_or_loader_is_one_line(parts, tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(4096))
    with pytest.raises(ApplianceError, match="has no GPT .*rebuild the bundle"):
        bootdisk.esp_layout(junk)
    with pytest.raises(ApplianceError, match="no systemd-boot at .*apt-get install systemd-boot-efi"):
        bootdisk.build(parts[0], parts[1], "x", tmp_path / "o.img", loader=tmp_path / "none.efi")
    assert not (tmp_path / "o.img").exists()
