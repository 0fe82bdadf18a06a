"""Device trees through pyfdt, on the tree QEMU itself generates for virt: the round
trip, pruning and /chosen, each checked with dtc, the reference implementation."""

import subprocess
from pathlib import Path

import pytest

from appliance.assemble import devicetree


@pytest.fixture(scope="module")
def qemu_dtb(tmp_path_factory) -> bytes:
    """The tree of `virt` with the runner's machine options, 256 MiB, 1 vCPU."""
    out = tmp_path_factory.mktemp("dtb") / "virt.dtb"
    subprocess.run(["qemu-system-aarch64", "-M", f"virt,gic-version=3,dumpdtb={out}", "-cpu", "max", "-m", "256",
                    "-smp", "1", "-nodefaults", "-display", "none"], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def dts(blob: bytes, tmp_path: Path) -> str:
    path = tmp_path / "t.dtb"
    path.write_bytes(blob)
    done = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(path)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def blocks(blob: bytes) -> tuple[bytes, bytes]:
    """The structure and strings blocks of a blob, as its header places them."""
    field = [int.from_bytes(blob[i:i + 4], "big") for i in range(0, 40, 4)]
    struct_off, strings_off, strings_size, struct_size = field[2], field[3], field[8], field[9]
    return blob[struct_off:struct_off + struct_size], blob[strings_off:strings_off + strings_size]


def test_round_trip_keeps_every_node_and_property(qemu_dtb, tmp_path):
    """Not the same bytes, and why: QEMU's blob is 1 MiB (free space for what it adds at
    boot) with its reservation map at offset 48, and its strings block in the order QEMU
    added the properties; pyfdt writes the blob packed (map at 40) and orders the strings
    by first use in a depth-first walk, so every property's name offset differs. The
    content, as dtc reads it, is identical, and pyfdt's own output round-trips exactly."""
    out = devicetree.to_dtb(devicetree.parse(qemu_dtb))
    assert len(qemu_dtb) == 1 << 20 and len(out) < 16384
    (struct_qemu, strings_qemu), (struct_ours, strings_ours) = blocks(qemu_dtb), blocks(out)
    assert len(struct_ours) == len(struct_qemu)
    assert sorted(strings_ours.split(b"\0")) == sorted(strings_qemu.split(b"\0"))
    assert dts(out, tmp_path) == dts(qemu_dtb, tmp_path)
    assert devicetree.to_dtb(devicetree.parse(out)) == out


def test_pruning_keeps_what_the_appliance_uses(qemu_dtb, tmp_path):
    tree = devicetree.parse(qemu_dtb)
    before = devicetree.summary(tree)
    removed = devicetree.prune(tree, devicetree.Pruning(virtio_devices=2))
    source = dts(devicetree.to_dtb(tree), tmp_path)
    for gone in ("pcie@", "flash@", "fw-cfg@", "pl061@", "gpio-keys", "platform-bus@", "pl031@"):
        assert gone not in source and any(r.startswith("/" + gone) for r in removed), gone
    # QEMU gives the first -device the highest transport: those two stay
    assert source.count("virtio,mmio") == 2
    assert "virtio_mmio@a003e00" in source and "virtio_mmio@a003c00" in source
    assert "virtio_mmio@a000000" not in source  # the probe register's transport: no device, not probed
    for kept in ("pl011@9000000", "intc@8000000", "psci", "timer", "cpus", "memory@40000000", "apb-pclk"):
        assert kept in source
    assert before["compatible"]["virtio,mmio"] == 32 and devicetree.summary(tree)["compatible"]["virtio,mmio"] == 2
    assert "arm,gic-v3-its" in before["compatible"] and "arm,gic-v3-its" not in devicetree.summary(tree)["compatible"]
    assert "30 x virtio_mmio" in devicetree.grouped(removed)
    assert devicetree.summary(tree)["nodes"] <= before["nodes"] - len(removed)  # gpio-keys had a child


def test_pruning_keeps_the_pcie_bridge_for_pci_devices(qemu_dtb):
    tree = devicetree.parse(qemu_dtb)
    removed = devicetree.prune(tree, devicetree.Pruning(virtio_devices=0, pci=True))
    assert not any(r.startswith("/pcie@") or "/its@" in r for r in removed)
    assert sum(r.startswith("/virtio_mmio@") for r in removed) == 32


def test_chosen_gets_the_bootargs_and_the_console(qemu_dtb, tmp_path):
    tree = devicetree.parse(qemu_dtb)
    devicetree.set_chosen(tree, "console=ttyAMA0 panic=-1 quiet", devicetree.STDOUT_PATH)
    devicetree.set_chosen(tree, "console=ttyAMA0 quiet", devicetree.STDOUT_PATH)  # replaced, not doubled
    source = dts(devicetree.to_dtb(tree), tmp_path)
    assert source.count("bootargs") == 1
    assert 'bootargs = "console=ttyAMA0 quiet";' in source
    assert 'stdout-path = "/pl011@9000000";' in source


def test_a_blob_that_is_no_device_tree_is_one_error():
    with pytest.raises(devicetree.DeviceTreeError, match="not a device tree blob"):
        devicetree.parse(b"\x7fELF" + bytes(60))
