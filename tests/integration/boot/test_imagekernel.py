"""A distribution booted the way it boots on a UEFI machine: a Debian bookworm image made
here by mmdebstrap with its own kernel and initrd (make-debian-systemd --kernel), built
from the shipped template rootfs_templates/debian-systemd-uefi.toml (kernel = "image",
initrd = "image", systemd-boot from a GPT disk under OVMF) and booted under TCG to
multi-user.target and sshd, every phase from the firmware to the service measured."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, SCONS, appliance, scratch_cache

pytestmark = pytest.mark.boot

MAKE = ROOT / "rootfs_templates" / "images" / "make-debian-systemd"
TEMPLATE = (ROOT / "rootfs_templates" / "debian-systemd-uefi.toml").read_text()


def test_the_images_own_kernel_and_initrd_started_by_systemd_boot_reach_multi_user_and_sshd(tmp_path):
    if shutil.which("mmdebstrap") is None:
        pytest.fail("mmdebstrap is not installed: run ./setup")
    image = tmp_path / "debian-systemd-kernel.tar"
    made = subprocess.run([str(MAKE), "--kernel", str(image)], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-2000:]
    template = tmp_path / "debian-systemd-uefi.toml"
    template.write_text(TEMPLATE.replace('"images/debian-systemd-kernel.tar"', json.dumps(str(image))))
    cache = scratch_cache(tmp_path / "cache")  # the image's kernel and root disk: not the user's cache
    done = subprocess.run([SCONS, "-Q", f"BUILD_DIR={tmp_path / 'build'}", "appliance", f"TEMPLATE={template}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, **cache})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    bundle = tmp_path / "build" / "debian-systemd-uefi"
    manifest = json.loads((bundle / "bundle.json").read_text())
    kernel = manifest["build"]["kernel"]
    release = next(Path(p).name.removeprefix("vmlinuz-") for p in subprocess.run(
        ["tar", "tf", str(image)], capture_output=True, text=True, check=True).stdout.split()
        if Path(p).name.startswith("vmlinuz-"))
    assert kernel["source"] == "image" and kernel["release"] == release  # the image's kernel, not the pinned one
    theirs = subprocess.run(["tar", "xOf", str(image), f"./boot/initrd.img-{release}"], capture_output=True,
                            check=True).stdout
    assert (bundle / "initrd").read_bytes()[:len(theirs)] == theirs  # the image's initrd, ours appended
    assert manifest["build"]["initrd"]["image_initrd_bytes"] == len(theirs)
    assert {"file": "boot.img", "kind": "boot"} in manifest["disks"]
    out = tmp_path / "results.json"
    ran = appliance("bench", str(bundle), "-n", "1", "--warmup", "0", "--accel", "tcg", "--timeout", "300", "-o", str(out),
                    "--no-record", timeout=600, env=cache)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    run = json.loads(out.read_text())["runs"][0]
    names = [e["name"] for e in run["events"]]
    ordered = ["fw_entry", "loader_entry", "kernel_entry", "efi_exit", "init_start", "image_init", "systemd_start",
               "sysinit_target", "basic_target", "multi_user_target", "systemd_finished"]
    assert [n for n in names if n in ordered] == ordered
    phases = run["phases_ms"]
    for phase in ("firmware", "bootloader", "kernel", "k_efi", "initrd", "to_systemd", "sysinit", "basic",
                  "multi_user", "userspace"):
        assert phases[phase] > 0, phase
    # the image's initrd (initramfs-tools: its modules, the root's mount, switch_root) is
    # in to_systemd; our init before it only brought the network up
    assert phases["to_systemd"] > phases["initrd"]
    assert "ssh_service" in names and phases["service_ready"] > phases["to_init"]
    assert run["systemd"]["startup_ms"]["userspace"] > 0  # systemd's own view came back too
