"""A distribution that boots with its own init, measured: a Debian bookworm image with
systemd and sshd, made here by mmdebstrap from the archive (rootfs_templates/images/
make-debian-systemd), booted by Debian's kernel from an EROFS root under a writable
overlay, under TCG, to multi-user.target and to sshd answering on a forwarded port; then
the same image with a unit that fails and with one that never lets the boot finish."""

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SCONS, appliance, scratch_cache

pytestmark = pytest.mark.boot

MAKE = ROOT / "rootfs_templates" / "images" / "make-debian-systemd"
TEMPLATE = (ROOT / "rootfs_templates" / "debian-systemd.toml").read_text()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    if shutil.which("mmdebstrap") is None:
        pytest.fail("mmdebstrap is not installed: run ./setup")
    out = tmp_path_factory.mktemp("image") / "debian-systemd.tar"
    done = subprocess.run([str(MAKE), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def with_units(image: Path, target: Path, units: dict[str, str]) -> Path:
    """A copy of IMAGE with UNITS (name -> unit file) in /etc/systemd/system, each wanted
    by multi-user.target, as an image maintainer's own units would be."""
    shutil.copyfile(image, target)
    with tarfile.open(target, "a") as archive:
        for name, text in units.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./etc/systemd/system/{name}")
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
            link = tarfile.TarInfo(f"./etc/systemd/system/multi-user.target.wants/{name}")
            link.type, link.linkname = tarfile.SYMTYPE, f"/etc/systemd/system/{name}"
            archive.addfile(link)
    return target


def build(folder: Path, image: Path, units: str = '["ssh.service"]') -> Path:
    """The shipped template, on IMAGE and naming UNITS, built into FOLDER."""
    text = TEMPLATE.replace('"images/debian-systemd.tar"', json.dumps(str(image)))
    text = text.replace('units = ["ssh.service"]', f"units = {units}")
    template = folder / "debian-systemd.toml"
    template.write_text(text)
    done = subprocess.run([SCONS, "-Q", f"BUILD_DIR={folder / 'build'}", "appliance", f"TEMPLATE={template}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **scratch_cache(folder / "cache")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder / "build" / "debian-systemd"


def test_a_systemd_image_is_measured_to_multi_user_and_to_sshd_beside_systemds_own_view(image, tmp_path):
    bundle = build(tmp_path, image)
    out = tmp_path / "results.json"
    done = appliance("bench", str(bundle), "-n", "1", "--warmup", "0", "--clock", "instructions", "--accel", "tcg",
                     "--timeout", "240", "-o", str(out), "--no-record", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads(out.read_text())["runs"][0]
    phases, insns = run["phases_ms"], run["phases_insn"]
    names = [e["name"] for e in run["events"]]
    # our init's part, then systemd's targets in order, the service, and the end of the boot
    ordered = ["init_start", "image_init", "sysinit_target", "basic_target", "multi_user_target", "systemd_finished"]
    assert [n for n in names if n in ordered] == ordered
    assert "ssh_service" in names and "service_ready" in names
    for phase in ("kernel", "initrd", "sysinit", "basic", "multi_user", "userspace", "to_multi_user"):
        assert phases[phase] > 0, phase
        # the instruction clock counts systemd's part too (the kernel's entry is inferred from the trace: no count)
        assert phase == "kernel" or insns[phase] > 0, phase
    assert phases["service_ready"] > phases["to_init"]  # sshd's banner came over the forwarded port
    assert run["forwards"] and "guest port 22" in run["forwards"][0]
    view = run["systemd"]
    assert view["state"] == "running" and view["failed"] == []
    assert any(b["unit"] == "ssh.service" for b in view["blame"])
    assert any("multi-user.target @" in line for line in view["critical_chain"])
    # the guest's clock against the host's on the same boot (docs/TEMPLATES.md says why they differ):
    # the host's stretch holds systemd's and a little more at each end
    userspace = phases["userspace"] - view["startup_ms"]["userspace"]
    assert 0 < userspace < max(1500.0, 0.25 * view["startup_ms"]["userspace"]), (phases["userspace"], view)
    assert phases["kernel"] + phases["initrd"] > view["startup_ms"]["kernel"]
    assert "systemd's own view" in done.stdout and "userspace" in done.stdout


FAILS = """[Unit]
Description=a unit that fails
[Service]
Type=oneshot
ExecStart=/bin/false
"""

HANGS = """[Unit]
Description=a unit that never finishes starting
Before=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sleep infinity
"""


def test_a_named_unit_that_fails_is_one_line_naming_it(image, tmp_path):
    broken = with_units(image, tmp_path / "broken.tar", {"broken.service": FAILS})
    bundle = build(tmp_path, broken, units='["broken.service"]')
    done = appliance("run", str(bundle), "--accel", "tcg", "--timeout", "240", timeout=400)
    assert done.returncode != 0
    assert "error: unit broken.service never started in the image's boot" in done.stderr
    assert "systemctl --failed: broken.service" in done.stderr


def test_a_boot_that_never_finishes_names_the_last_probe_and_the_unit_it_waits_for(image, tmp_path):
    hung = with_units(image, tmp_path / "hung.tar", {"hang.service": HANGS})
    bundle = build(tmp_path, hung)
    done = appliance("run", str(bundle), "--accel", "tcg", "--timeout", "40", timeout=300)
    assert done.returncode != 0
    line = next(line for line in done.stderr.splitlines() if line.startswith("error:"))
    assert "systemd did not finish the boot within 40 s" in line and "its last probe: " in line, line
    assert "multi_user_target" not in line.split("its last probe: ")[1].split(",")[0]
    assert "units it started that never finished: hang.service" in line, line
