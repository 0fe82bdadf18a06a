"""UEFI in QEMU's command line: the q35-ovmf machine boots the UKI through Debian's OVMF, and
firmware or an EFI program that is not one is refused before any boot."""

from pathlib import Path

import pytest

from appliance.boot import qemu
from appliance.boot.qemu import BootSpec
from appliance.bundle import Bundle
from appliance.errors import BootError
from tests.conftest import manifest_of


def bundle(tmp_path: Path, with_uki: bool) -> Bundle:
    files = {"kernel": {}, "initrd": {}, **({"uki.efi": {}} if with_uki else {})}
    return Bundle(tmp_path, manifest_of(machine="q35-ovmf", cmdline="console=ttyS0 reboot=t", files=files,
                                        virtio_transports=["virtio_pci"]))


def files(tmp_path: Path) -> qemu.BootFiles:
    return qemu.BootFiles(tmp_path / "c", tmp_path / "t", tmp_path / "p")


def test_ovmf_boots_the_bundles_uki_with_its_variables_never_written(tmp_path, monkeypatch):
    code, variables = tmp_path / "CODE.fd", tmp_path / "VARS.fd"
    code.write_bytes(b"c" * 40 + b"_FVH")  # a firmware volume's signature, where OVMF's images have it
    variables.write_bytes(b"v" * 40 + b"_FVH")
    monkeypatch.setattr(qemu, "OVMF", (code, variables))
    args = qemu.argv(BootSpec(bundle(tmp_path, True), "tcg"), files(tmp_path))
    assert args[args.index("-M") + 1] == "q35"
    assert args[args.index("-kernel") + 1] == str(tmp_path / "uki.efi") and "-initrd" not in args
    assert args[args.index("-append") + 1] == "console=ttyS0 reboot=t"  # reaches the stub as its command line
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}" in args
    assert f"if=pflash,format=raw,unit=1,snapshot=on,file={variables}" in args
    # a bundle without a UKI (built for another machine): the kernel through its EFI stub
    plain = qemu.argv(BootSpec(bundle(tmp_path, False), "tcg"), files(tmp_path))
    assert plain[plain.index("-kernel") + 1] == str(tmp_path / "kernel") and "-initrd" in plain


def test_a_missing_ovmf_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu, "OVMF", (tmp_path / "none.fd", tmp_path / "none2.fd"))
    with pytest.raises(BootError, match="the q35-ovmf machine needs Debian's OVMF .*: apt-get install ovmf"):
        qemu.argv(BootSpec(bundle(tmp_path, True), "tcg"), files(tmp_path))


def test_a_garbage_efi_program_or_firmware_is_one_line_before_any_boot(tmp_path, monkeypatch):
    """Issue 36: a garbage OVMF or uki.efi failed only at --timeout."""
    junk = tmp_path / "uki.efi"
    junk.write_bytes(b"\0" * 8192)
    with pytest.raises(BootError, match="is not an EFI program"):
        qemu.check_pe(junk)
    empty = tmp_path / "OVMF_CODE.fd"
    empty.write_bytes(b"")
    monkeypatch.setattr(qemu, "OVMF", (empty, empty))
    with pytest.raises(BootError, match="is not a UEFI firmware volume"):
        qemu.ovmf_args()


def test_a_boot_loaders_disk_is_booted_read_only_with_its_reads_traced(tmp_path, monkeypatch):
    from appliance.assemble import bootdisk

    code = tmp_path / "CODE.fd"
    code.write_bytes(b"c" * 40 + b"_FVH")
    monkeypatch.setattr(qemu, "OVMF", (code, code))
    (tmp_path / "kernel").write_bytes(b"K" * 1000)
    (tmp_path / "initrd").write_bytes(b"I" * 1000)
    loader = tmp_path / "loader.efi"
    loader.write_bytes(b"MZ" + bytes(100))
    bootdisk.build(tmp_path / "kernel", tmp_path / "initrd", "console=ttyS0 reboot=t", tmp_path / "boot.img",
                   loader=loader)
    booted = Bundle(tmp_path, manifest_of(
        machine="q35-ovmf", cmdline="console=ttyS0 reboot=t", virtio_transports=["virtio_pci"],
        files={"kernel": {}, "initrd": {}, "rootfs.img": {}, "boot.img": {}},
        disks=[{"file": "rootfs.img", "kind": "virtio-blk"}, {"file": "boot.img", "kind": "boot"}]))
    work = tmp_path / "work"
    work.mkdir()
    boot_files = qemu.BootFiles(work / "console.log", work / "trace.log", work / "perf.data")
    args = qemu.argv(BootSpec(booted, "tcg"), boot_files)
    assert "-kernel" not in args and "-append" not in args  # the firmware boots the disk
    drives = [args[i + 1] for i, a in enumerate(args) if a == "-drive" and "if=none" in args[i + 1]]
    assert drives[0].startswith("id=disk0,file=" + str(tmp_path / "rootfs.img"))  # the root stays /dev/vda
    assert drives[1] == f"id=disk1,file={tmp_path / 'boot.img'},format=raw,if=none,readonly=on"
    assert "virtio-blk-pci,drive=disk1,bootindex=0" in args
    assert args[args.index("virtio_blk_handle_read") - 1] == "-trace"
    assert not (work / "boot.img").exists()  # the bundle's own words: its own disk
    # words of this boot only (--append): a copy in the boot's folder says them
    args = qemu.argv(BootSpec(booted, "tcg", extra_cmdline="loglevel=8"), boot_files)
    assert f"id=disk1,file={work / 'boot.img'},format=raw,if=none,readonly=on" in args
    assert bootdisk.read_entry(work / "boot.img").endswith("options console=ttyS0 reboot=t loglevel=8\n")
    assert bootdisk.read_entry(tmp_path / "boot.img").endswith("options console=ttyS0 reboot=t\n")


def test_a_bundle_booted_from_its_loaders_disk_refuses_another_machine(tmp_path):
    from appliance.errors import BundleError
    from appliance.machines import Machine

    booted = Bundle(tmp_path, manifest_of(
        machine="q35-ovmf", cmdline="console=ttyS0 reboot=t", virtio_transports=["virtio_pci"],
        files={"kernel": {}, "initrd": {}, "boot.img": {}}, disks=[{"file": "boot.img", "kind": "boot"}]))
    with pytest.raises(BundleError, match="boots through systemd-boot from boot.img, which needs UEFI"):
        booted.with_machine(Machine.PC_SEABIOS)
    assert booted.with_machine(Machine.Q35_OVMF).boot_disk == tmp_path / "boot.img"
