"""Appliances with kernel modules and a real root disk, booted under TCG."""

import json
import shutil
import subprocess

import pytest

from appliance import bundle
from appliance.assemble import kernelfetch
from appliance.boot import measure
from appliance.boot.qemu import BootSpec
from tests.conftest import BUILD, ROOT, appliance, scons

pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def disk_bundle():
    done = scons("appliance", "TEMPLATE=disk")
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD / "disk"


def test_disk_boot_loads_modules_mounts_root_and_runs_payload_from_it(disk_bundle):
    target = bundle.load(disk_bundle)
    run = measure.boot(BootSpec(target, "tcg", 120))
    names = [e.name for e in run.events]
    expected = ["init_start", "init_modules_loaded", "init_root_mounted", "payload_start", "work_done", "payload_end"]
    assert [n for n in names if n in expected] == expected
    shipped = target.manifest["build"]["initrd"]["modules"]
    loaded = [name for name, _, _ in run.modules]
    assert sorted(f"{n}.ko" for n in loaded) == sorted(k.replace("-", "_") for k in shipped)
    assert loaded.index("jbd2") < loaded.index("ext4") and loaded.index("virtio_ring") < loaded.index("virtio_blk")
    assert all(duration > 0 for _, _, duration in run.modules)
    assert run.phases["modules"] > 0 and run.phases["root"] > 0
    assert bundle.problems(target) == []  # writes were discarded: the bundle is intact


def test_payload_writes_a_marker_the_host_reads_back(disk_bundle, tmp_path):
    copy = tmp_path / "disk"
    shutil.copytree(disk_bundle, copy)
    done = appliance("run", str(copy), "--accel", "tcg", "--keep-disk-writes", "--append", "appliance_payload=/bin/marker")
    assert done.returncode == 0, done.stderr
    assert "marker: written" in done.stdout
    for module in ("virtio_mmio", "virtio_blk", "ext4"):
        assert f"appliance-module: {module} " in done.stdout
    marker = subprocess.run(["debugfs", "-R", "cat /marker", str(copy / "rootfs.img")], capture_output=True,
                            text=True, check=True).stdout
    assert marker.startswith("appliance-marker ")


def test_module_rule_matching_nothing_is_one_clear_error(tmp_path):
    template = tmp_path / "bad.toml"
    template.write_text('[modules]\nrules = ["no_such_module"]\n')
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode != 0
    release = kernelfetch.read_lock(ROOT / "recipes/kernel/debian.lock").release
    assert f"error: module rule 'no_such_module' matches no module of kernel {release}" in done.stderr
    assert "Traceback" not in done.stderr


def test_inspect_lists_modules_first_with_totals(disk_bundle):
    done = appliance("inspect", str(disk_bundle), "--json")
    info = json.loads(done.stdout)
    files = info["initrd"]["files"]
    modules = [f for f in files if f["module"]]
    assert len(modules) == 10 and files[: len(modules)] == modules
    assert info["initrd"]["uncompressed_bytes"] > info["initrd"]["compressed_bytes"] > 0
    assert info["disks"] == [{"file": "rootfs.img", "kind": "virtio-blk", "bytes": 32 << 20}]
    assert "10 modules" in appliance("inspect", str(disk_bundle)).stdout


def test_pmem_root_mounts_with_dax_and_keeps_writes(tmp_path):
    done = scons("appliance", "TEMPLATE=pmem")
    assert done.returncode == 0, done.stdout + done.stderr
    copy = tmp_path / "pmem"
    shutil.copytree(BUILD / "pmem", copy)
    # The init mounts with -o dax, which ext4 refuses ("DAX unsupported by block
    # device") unless the NVDIMM really is an fsdax device: a successful boot proves DAX.
    done = appliance("run", str(copy), "--accel", "tcg", "--keep-disk-writes", "--append", "appliance_payload=/bin/marker")
    assert done.returncode == 0, done.stderr
    assert "appliance-probe: init_root_mounted" in done.stdout and "marker: written" in done.stdout
    for module in ("nfit", "nd_pmem", "libnvdimm"):
        assert f"appliance-module: {module} " in done.stdout
    fs = tmp_path / "fs.img"  # the ext4 filesystem starts after the 2 MiB fsdax header
    fs.write_bytes((copy / "rootfs.img").read_bytes()[2 << 20:])
    marker = subprocess.run(["debugfs", "-R", "cat /marker", str(fs)], capture_output=True, text=True,
                            check=True).stdout
    assert marker.startswith("appliance-marker ")


def test_release_of_a_disk_appliance_has_a_qcow2_and_inspects_from_the_archive(disk_bundle):
    assert scons("release", "TEMPLATE=disk").returncode == 0
    out = BUILD / "release/disk"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(out / "disk-rootfs.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 32 << 20
    assert "disk-rootfs.qcow2" in (out / "SHA256SUMS").read_text()
    archive = out / "disk.tar.zst"
    assert appliance("verify", str(archive)).returncode == 0
    inspected = json.loads(appliance("inspect", str(archive), "--json").stdout)
    assert inspected["bundle"] == str(archive) and inspected["kernel_release"] == target_release()
    assert sum(f["module"] for f in inspected["initrd"]["files"]) == 10


def target_release():
    return kernelfetch.read_lock(ROOT / "recipes/kernel/debian.lock").release


def test_own_kernel_with_its_modules_dir_and_a_mismatched_one(tmp_path):
    release = target_release()
    files = kernelfetch.fetch_debian(kernelfetch.read_lock(ROOT / "recipes/kernel/debian.lock"))
    template = tmp_path / "disk-own.toml"
    template.write_text((ROOT / "rootfs_templates/disk.toml").read_text())
    done = scons("appliance", f"TEMPLATE={template}", f"KERNEL={files.image}", f"MODULES={files.modules}")
    assert done.returncode == 0, done.stderr
    # a variant of the template (KERNEL=) has its own folder, named for the kernel image
    manifest = json.loads((BUILD / f"disk-own+kernel-{files.image.name}/bundle.json").read_text())
    assert manifest["build"]["kernel"]["release"] == release and manifest["build"]["kernel"]["source"] == "KERNEL"
    wrong = tmp_path / "lib/modules/6.0.0-other"
    wrong.parent.mkdir(parents=True)
    wrong.symlink_to(files.modules)
    done = scons("appliance", f"TEMPLATE={template}", f"KERNEL={files.image}", f"MODULES={wrong}")
    assert done.returncode != 0
    assert f"error: modules directory {wrong} is for 6.0.0-other, the kernel is {release}" in done.stderr


@pytest.mark.parametrize("on_error", ["continue", "stop"])
def test_a_module_that_fails_to_load_goes_on_or_stops_as_the_template_says(tmp_path, on_error):
    # kvm_intel needs VMX, which TCG does not offer: its load fails, its dependencies load.
    template = tmp_path / f"modfail-{on_error}.toml"
    template.write_text(f'[modules]\nrules = ["kvm_intel"]\non_error = "{on_error}"\n'
                        '[init]\npayload = ["/bin/bench"]\n[programs]\nbuild = ["bench"]\n[vm]\ncmdline = "quiet"\n')
    assert scons("appliance", f"TEMPLATE={template}").returncode == 0
    done = appliance("run", str(BUILD / template.stem), "--accel", "tcg")
    assert "appliance-module: kvm " in done.stdout and "appliance-init: module kvm_intel failed" in done.stderr + done.stdout
    if on_error == "continue":
        assert done.returncode == 0, done.stderr
        assert "appliance-probe: payload_end" in done.stdout
    else:
        assert done.returncode == 3
        assert "error: init stopped: stopping: module kvm_intel did not load" in done.stderr


def test_an_accelerated_module_the_cpu_cannot_use_is_skipped_not_fatal(disk_bundle):
    # qemu64 has no SSE4.2: crc32c_intel refuses with ENODEV and the kernel uses crc32c_generic
    done = appliance("run", str(disk_bundle), "--accel", "tcg", "--cpu", "qemu64")
    assert done.returncode == 0, done.stderr
    assert "appliance-init: module crc32c_intel skipped: no such device" in done.stdout + done.stderr
    assert "warning: module crc32c_intel skipped" in done.stderr
    assert "appliance-probe: payload_end" in done.stdout


def test_a_disk_bundle_refuses_a_machine_without_its_transport_and_its_variant_boots(disk_bundle):
    done = appliance("run", str(disk_bundle), "--accel", "tcg", "--machine", "pc-seabios")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: bundle {disk_bundle} cannot boot as pc-seabios: its virtio devices sit on virtio_pci")
    assert scons("appliance", "TEMPLATE=disk", "MACHINE=pc-seabios").returncode == 0
    variant = BUILD / "disk+pc-seabios"
    assert bundle.load(variant).manifest["virtio_transports"] == ["virtio_mmio", "virtio_pci"]
    done = appliance("run", str(variant), "--accel", "tcg")
    assert done.returncode == 0, done.stderr
    assert "appliance-probe: payload_end" in done.stdout
