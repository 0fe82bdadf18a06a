"""The KVM probe guest embedded in accel, byte for byte its assembly source."""

import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.boot import accel


@pytest.mark.skipif(shutil.which("ld") is None, reason="binutils not installed")
def test_embedded_kvm_probe_matches_its_assembly_source(tmp_path):
    source = Path(accel.__file__).with_name("kvmprobe.S")
    subprocess.run(["gcc", "-c", str(source), "-o", str(tmp_path / "p.o")], check=True)
    subprocess.run(["ld", "-Ttext=0xf0000", "--oformat", "binary", "-o", str(tmp_path / "p.bin"),
                    str(tmp_path / "p.o")], check=True)
    assert (tmp_path / "p.bin").read_bytes() == accel.probe_rom()
    assert len(accel.probe_rom()) == 65536
