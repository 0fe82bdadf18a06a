import shutil
import subprocess
from pathlib import Path

import pytest

from appliance import accel, bundle
from appliance.machines import Machine
from appliance.errors import BootError, BundleError
from appliance.kernel import bzimage_version
from appliance.measure import check_console


def make_bundle(folder: Path) -> None:
    (folder / "kernel").write_bytes(b"K" * 100)
    (folder / "initrd").write_bytes(b"I" * 10)
    data = bundle.manifest(folder, name="t", cmdline="console=ttyS0", machine=Machine.MICROVM, memory_mib=64,
                           cpus=1, user_probes=((0x21, "mine"),), build={})
    bundle.write(folder, data)


def test_intact_bundle_loads_with_its_probe_table(tmp_path):
    make_bundle(tmp_path)
    b = bundle.load(tmp_path)
    assert b.machine is Machine.MICROVM and b.cmdline == "console=ttyS0"
    assert b.probe_table[(0xF4, 0x10)] == "init_start" and b.probe_table[(0xF4, 0x21)] == "mine"


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "initrd").write_bytes(b"J" * 10), "initrd does not match its sha256"),
    (lambda d: (d / "kernel").write_bytes(b"K" * 99), "kernel has 99 bytes"),
    (lambda d: (d / "kernel").unlink(), "kernel is missing"),
    (lambda d: (d / "bundle.json").write_text("{"), "not valid JSON"),
    (lambda d: (d / "bundle.json").write_text('{"format": 99}'), "format 99"),
    (lambda d: (d / "bundle.json").unlink(), "not a bundle"),
])
def test_damaged_bundles_are_refused(tmp_path, damage, message):
    make_bundle(tmp_path)
    damage(tmp_path)
    with pytest.raises(BundleError, match=message):
        bundle.load(tmp_path)


def test_bzimage_version_from_setup_header():
    head = bytearray(0x1000)
    head[0x202:0x206] = b"HdrS"
    head[0x20E:0x210] = (0x400).to_bytes(2, "little")
    head[0x600:0x620] = b"6.1.0-56-amd64 (debian@x) #1\0\0\0\0"
    assert bzimage_version(bytes(head)) == "6.1.0-56-amd64"
    assert bzimage_version(b"\0" * 0x1000) is None


@pytest.mark.skipif(shutil.which("ld") is None, reason="binutils not installed")
def test_embedded_kvm_probe_matches_its_assembly_source(tmp_path):
    source = Path(accel.__file__).with_name("kvmprobe.S")
    subprocess.run(["gcc", "-c", str(source), "-o", str(tmp_path / "p.o")], check=True)
    subprocess.run(["ld", "-Ttext=0xf0000", "--oformat", "binary", "-o", str(tmp_path / "p.bin"),
                    str(tmp_path / "p.o")], check=True)
    assert (tmp_path / "p.bin").read_bytes() == accel.probe_rom()
    assert len(accel.probe_rom()) == 65536


def test_console_checks():
    assert check_console("appliance-init: payload exited with status 0\n") == 0
    assert check_console("no payload here") is None
    with pytest.raises(BootError, match="status 3"):
        check_console("appliance-init: payload exited with status 3\n")
    with pytest.raises(BootError, match="kernel panic: Kernel panic - not syncing: Attempted to kill init"):
        check_console("[ 1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n")
    with pytest.raises(BootError, match="cannot exec payload"):
        check_console("appliance-init: cannot exec payload /bin/x No such file\n")
