"""QEMU's command line for aarch64 bundles: its own binary, virt with the bundle's device
tree, virtio-mmio devices, no x86 port devices; and what it refuses."""

from pathlib import Path

import pytest

from appliance.boot import qemu
from appliance.boot.qemu import BootSpec, Channel
from appliance.bundle import Bundle
from appliance.errors import BootError, BundleError
from appliance.machines import Machine
from tests.conftest import manifest_of


def bundle(tmp_path: Path, **extra) -> Bundle:
    files = {"kernel": {}, "initrd": {}, "board.dtb": {}}
    keys = {"machine": "virt", "arch": "aarch64", "cmdline": "console=ttyAMA0", "files": files,
            "disks": [{"file": "rootfs.img", "kind": "virtio-blk"}], "virtio_transports": ["virtio_mmio"], **extra}
    manifest = manifest_of(**keys)
    (tmp_path / "rootfs.img").write_bytes(bytes(4096))
    return Bundle(tmp_path, manifest)


def test_virt_boots_with_its_device_tree_and_mmio_devices(tmp_path):
    files = qemu.BootFiles(tmp_path / "c", tmp_path / "t", tmp_path / "p")
    args = qemu.argv(BootSpec(bundle(tmp_path), "tcg"), files)
    assert Path(args[0]).name == "qemu-system-aarch64"  # chosen by the bundle's architecture, inside boot/
    assert args[args.index("-M") + 1] == "virt,gic-version=3"
    assert args[args.index("-cpu") + 1] == "max"
    assert args[args.index("-dtb") + 1] == str(tmp_path / "board.dtb")
    assert any(a.startswith("virtio-blk-device,") for a in args)
    assert "isa-debugcon" not in " ".join(args)  # the MMIO probe register needs no device
    assert "memory_region_ops_write" in args


def test_the_exit_channel_is_refused_on_aarch64(tmp_path):
    files = qemu.BootFiles(tmp_path / "c", tmp_path / "t", tmp_path / "p")
    with pytest.raises(BootError, match="isa-debug-exit, an x86 I/O port device"):
        qemu.argv(BootSpec(bundle(tmp_path), "tcg", channel=Channel.EXIT), files)


def test_a_missing_qemu_for_the_bundles_architecture_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no QEMU at all
    with pytest.raises(BootError, match="this bundle is aarch64 and qemu-system-aarch64 is not installed: "
                                        "install qemu-system-arm"):
        _ = BootSpec(bundle(tmp_path), "tcg").qemu


def test_an_aarch64_bundle_cannot_be_booted_as_an_x86_machine(tmp_path):
    with pytest.raises(BundleError, match="is aarch64; microvm is an x86_64 machine"):
        bundle(tmp_path).with_machine(Machine.MICROVM)


def test_an_unknown_architecture_is_named(tmp_path):
    with pytest.raises(BundleError, match="'riscv64', an architecture this runner does not know"):
        _ = bundle(tmp_path, arch="riscv64").arch


def test_tune_offers_only_what_applies_on_virt(tmp_path):
    from appliance.runs.tunables import catalog

    names = [k.name for k in catalog(bundle(tmp_path, cmdline="console=ttyAMA0 quiet", memory_mib=256))]
    assert names == ["verbose console", "cryptomgr.notests", "mitigations=off", "128 MiB", "1024 MiB"]


def test_the_vcpus_of_a_device_tree_bundle_are_fixed_at_build_time(tmp_path):
    target = bundle(tmp_path, cpus=1)
    assert target.with_run(memory_mib=512).manifest["memory_mib"] == 512  # QEMU updates /memory itself
    with pytest.raises(BundleError, match="device tree lists 1 vCPU"):
        target.with_run(cpus=2)
