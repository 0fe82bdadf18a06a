"""The resolved build: its output names and paths, and the facts derived from the
template and the options (which kernel, PVH entry, whether an ISO reaches its disks)."""

from dataclasses import replace
from pathlib import Path

from appliance.assemble.config import BuildConfig
from appliance.paths import ROOT
from tests.unit.assemble.test_template import parse


def test_outputs_are_named_by_template_and_variant_under_the_build_dir():
    template = parse("")
    plain = BuildConfig(template, "", 0)
    assert plain.out_name == "t" and plain.out("t", "kernel") == "#build/t/kernel"
    assert plain.real_path("t", "initrd") == ROOT / "build" / "t" / "initrd"
    assert plain.facts_path == ROOT / "build" / "facts" / "t.json"
    moved = BuildConfig(template, "", 0, build_dir="/tmp/b", variant="q35-qboot")
    assert moved.out_name == "t+q35-qboot" and moved.real_path("x") == Path("/tmp/b/x")
    assert moved.programs_dir == "programs"


def test_the_kernel_facts_follow_the_template_and_kernel_option():
    debian = BuildConfig(parse("[appliance]\nkernel_entry = 'pvh'\n"), "", 0)
    assert not debian.minimal and debian.pvh_entry
    minimal = BuildConfig(parse("[appliance]\nkernel = 'minimal'\n"), "", 0)
    assert minimal.minimal and not minimal.pvh_entry
    own = BuildConfig(parse("[appliance]\nkernel = 'minimal'\n"), "/boot/vmlinuz", 0)
    assert not own.minimal  # KERNEL= wins over the template's kernel


def test_an_iso_boots_on_a_pc_only_where_its_disks_are_on_pci():
    assert BuildConfig(parse(""), "", 0).iso_boots()  # no root disk: nothing to reach
    assert not BuildConfig(parse("[appliance]\narch = 'aarch64'\n"), "", 0).iso_boots()
    on_mmio = parse("[rootfs]\ndisk = 'virtio-blk'\n[vm]\nmachine = 'microvm'\n")
    assert not BuildConfig(on_mmio, "", 0).iso_boots()
    assert BuildConfig(parse("[rootfs]\ndisk = 'virtio-blk'\n[vm]\nmachine = 'q35-qboot'\n"), "", 0).iso_boots()


def test_template_files_are_named_from_the_checkouts_top_unless_absolute(tmp_path):
    shipped = replace(parse(""), folder="rootfs_templates")
    assert BuildConfig(shipped, "", 0).template_file("a.txt") == "#rootfs_templates/a.txt"
    assert BuildConfig(parse("", tmp_path), "", 0).template_file("a.txt") == str(tmp_path / "a.txt")
