"""The KVM probe guest, and the console checks of a finished boot."""

import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.boot import accel
from appliance.boot.measure import check_console
from appliance.errors import BootError


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


def test_qemu_killed_from_outside_is_said_so():
    from appliance.boot import measure, qemu

    raw = measure.RawBoot(qemu.Exit(-9, 0, 1, 0, ""), "booting\n", "", [], ["qemu-system-x86_64"], Path("p"))
    assert str(measure._failed_start(raw)) == "QEMU was killed by SIGKILL from outside the runner during the boot"
    failed = measure.RawBoot(qemu.Exit(1, 0, 1, 0, "qemu: bad option\n"), "", "", [], ["qemu"], Path("p"))
    assert str(measure._failed_start(failed)).startswith("QEMU exited with status 1: qemu: bad option")
