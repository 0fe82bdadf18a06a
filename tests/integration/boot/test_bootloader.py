"""A disk with a boot loader: the benchmark appliance built with LOADER=systemd-boot is a
GPT disk that Debian's OVMF boots under TCG through systemd-boot, which reads the kernel
and initrd from the disk; the boot loader's phase is measured by those reads, and a
boot's own command-line words reach the kernel through the loader's entry."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import BUILD, appliance, scons

pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def booted_from_disk():
    done = scons("appliance", "TEMPLATE=benchmark", "MACHINE=q35-ovmf", "LOADER=systemd-boot")
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD / "benchmark+q35-ovmf+systemd-boot"


def test_systemd_boot_starts_the_kernel_from_the_disk_and_its_phase_is_measured(booted_from_disk, tmp_path):
    manifest = json.loads((booted_from_disk / "bundle.json").read_text())
    assert {"file": "boot.img", "kind": "boot"} in manifest["disks"] and "uki.efi" not in manifest["files"]
    out = tmp_path / "r.json"
    ran = appliance("bench", str(booted_from_disk), "-n", "1", "--warmup", "0", "--accel", "tcg", "-o", str(out),
                    timeout=600)
    assert ran.returncode == 0, ran.stderr
    run = json.loads(out.read_text())["runs"][0]
    events = {e["name"]: e for e in run["events"]}
    assert events["loader_entry"]["source"] == events["kernel_entry"]["source"] == "trace-inferred"
    assert events["kernel_entry"]["t_ms"] < events["efi_exit"]["t_ms"] < events["init_start"]["t_ms"]
    assert events["init_start"]["source"] == "trace" and "payload_end" in events
    phases = run["phases_ms"]
    # OVMF under TCG takes seconds to its first disk read; the loader reads a ~8 MB kernel
    # in tens to hundreds of ms; none of it is counted twice
    assert phases["firmware"] > 500 and phases["bootloader"] > 5 and phases["kernel"] > phases["k_efi"] > 0
    assert phases["firmware"] + phases["bootloader"] + phases["kernel"] == pytest.approx(
        events["init_start"]["t_ms"] - events["fw_entry"]["t_ms"], abs=0.01)
    assert "bootloader" in ran.stdout


def test_a_boots_own_words_reach_the_kernel_through_the_loader_entry(booted_from_disk):
    before = (booted_from_disk / "boot.img").read_bytes()
    done = appliance("run", str(booted_from_disk), "--accel", "tcg", "--append", "appliance_payload=/bin/nothing",
                     timeout=600)
    assert done.returncode == 3
    error = done.stderr.strip().splitlines()[-1]
    shutil.rmtree(Path(error.rsplit("(the whole console: ", 1)[1].rstrip(")")).parent)  # the kept console
    assert "cannot exec payload /bin/nothing" in error, done.stderr
    assert (booted_from_disk / "boot.img").read_bytes() == before  # the copy had the words, not the bundle
    assert appliance("verify", str(booted_from_disk)).returncode == 0
