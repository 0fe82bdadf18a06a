import re
from pathlib import Path

import pytest

from appliance.assemble.compress import Compression
from appliance.assemble.initramfs import init_conf
from appliance.assemble.template import (
    Kernel,
    Loader,
    Mount,
    find_template,
    load_template,
    parse_template,
)
from appliance.errors import TemplateError
from appliance.machines import Machine
from tests.conftest import ROOT

GOOD = """
[appliance]
description = "test"
compression = "none"
[init]
mounts = ["proc", "tmpfs"]
payload = ["/bin/bench", "--fast"]
[programs]
build = ["bench"]
[vm]
machine = "pc-seabios"
memory_mib = 128
cpus = 2
cmdline = "quiet"
[probes]
work_done = 0x20
"""


def parse(text: str, folder: Path = ROOT) -> object:
    return parse_template("t", text, folder, {"bench"})


def test_a_boot_loader_is_a_uefi_machines_and_puts_its_disk_after_the_root():
    from appliance.assemble.manifest import disks

    text = "[vm]\nmachine = 'q35-ovmf'\nloader = 'systemd-boot'\n"
    plain = parse(text)
    assert plain.loader is Loader.SYSTEMD_BOOT and disks(plain) == (("boot.img", "boot"),)
    rooted = parse(text + "[rootfs]\ndisk = 'virtio-blk'\n")
    assert disks(rooted) == (("rootfs.img", "virtio-blk"), ("boot.img", "boot"))  # the root stays /dev/vda


def test_good_template_parses_into_typed_values():
    t = parse(GOOD)
    assert t.compression is Compression.NONE
    assert t.mounts == (Mount.PROC, Mount.TMPFS)
    assert t.payload == ("/bin/bench", "--fast")
    assert t.machine is Machine.PC_SEABIOS and t.memory_mib == 128 and t.cpus == 2
    assert t.probes == ((0x20, "work_done"),)


def test_json_round_trip_is_stable_and_has_no_host_path():
    t = parse(GOOD)
    assert t.to_json() == parse(GOOD).to_json()
    assert str(ROOT) not in t.to_json()
    assert parse(GOOD.replace("quiet", "loglevel=7")).to_json() != t.to_json()


@pytest.mark.parametrize("text, message", [
    ("[appliance]\ncolour = 1\n", "unknown key 'colour' in \\[appliance\\]"),
    ("[bogus]\n", "unknown table \\[bogus\\]"),
    ("[vm]\ncpus = '2'\n", "cpus must be a int"),
    ("[vm]\ncpus = true\n", "cpus must be a int"),
    ("[vm]\nmemory_mib = 1\n", "memory_mib must be 16-65536"),
    ("[vm]\nmachine = 'vax'\n", "'vax' is not one of: microvm, q35-qboot, pc-seabios"),
    ("[appliance]\ncompression = 'lzo'\n", "is not one of: none, zstd"),
    ("[init]\nmounts = ['nfs']\n", "is not one of"),
    ("[init]\npayload = ['/bin/missing']\n", "payload '/bin/missing' is not in the appliance"),
    ("[programs]\nbuild = ['nosuch']\n", "program 'nosuch' has no source"),
    ("[probes]\nx = 5\n", "code from 0x20 to 0x7f"),
    ("[probes]\nx = 0x20\ny = 0x20\n", "one code twice"),
    ("[[files]]\nsrc = '/etc/passwd'\ndst = 'x'\n", "relative path without '..'"),
    ("[[files]]\nsrc = '../x'\ndst = 'x'\n", "relative path without '..'"),
    ("[[files]]\nsrc = 'pyproject.toml'\ndst = '/etc/x'\n", "relative path without '..'"),
    ("[[files]]\nsrc = 'no-such-file'\ndst = 'x'\n", "does not exist"),
    ("[[files]]\nsrc = 'pyproject.toml'\n", "needs src and dst"),
    ("not toml [", "not valid TOML"),
    ("[packages]\nhost = 'python3'\n", "host must be a list"),
    ("[packages]\nhost_files = ['usr/lib/*']\n", "host_files 'usr/lib/\\*' must be an absolute host path"),
    ("[packages]\ndebian = ['']\n", "debian must be a list of non-empty strings"),
    ("[packages]\nrpm = ['x']\n", "unknown key 'rpm' in \\[packages\\]"),
    ("[init]\nshell = 'sh'\n", "shell must be a bool or list"),
    ("[appliance]\nkernel_entry = 'efi'\n", "kernel_entry = 'efi' is not one of: bzimage, pvh"),
    ("[appliance]\nkernel = 'minimal'\nkernel_entry = 'pvh'\n", "kernel_entry = 'pvh' is for the Debian kernel"),
    ("[vm]\nloader = 'grub'\n", "loader = 'grub' is not one of: none, systemd-boot"),
    ("[vm]\nloader = 'systemd-boot'\n", "a UEFI boot loader: it needs machine = 'q35-ovmf' \\(not 'microvm'\\)"),
    ("[appliance]\nkernel = 'minimal'\n[vm]\nloader = 'systemd-boot'\nmachine = 'q35-ovmf'\n",
     "through its EFI stub, which only the Debian kernel's bzImage has"),
    ("[init]\nshell = ['sh']\n", "shell must be true or an argv whose first word is an absolute"),
    ("[packages]\ndebian = ['x']\n[init]\npayload = ['python3']\n", "payload 'python3' is not in the appliance"),
])
def test_bad_templates_fail_with_a_clear_message(text, message):
    with pytest.raises(TemplateError, match=message):
        parse(text)


def test_files_and_payload_from_files(tmp_path):
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    t = parse_template("t", "[init]\npayload=['/opt/run.sh']\n[[files]]\nsrc='run.sh'\ndst='opt/run.sh'\nmode=0o755\n",
                       tmp_path, set())
    assert t.files[0].dst == "opt/run.sh" and t.files[0].mode == 0o755


def test_shipped_templates_load():
    from appliance.assemble.guestprog import available as available_programs

    for path in sorted((ROOT / "rootfs_templates").glob("*.toml")):
        template = load_template(path, available_programs())
        assert template.name == path.stem


def test_find_template_names_known_ones():
    with pytest.raises(TemplateError, match="known: .*benchmark.*minimal"):
        find_template("nope", ROOT / "rootfs_templates")


def test_init_conf_lists_mounts_payload_and_after():
    conf = init_conf(parse(GOOD))
    assert conf == "mount proc /proc\nmount tmpfs /tmp\npayload /bin/bench --fast\nafter poweroff\n"


@pytest.mark.parametrize("files, programs, message", [
    ('dst = "init"', "", "collides with the init"),
    ('dst = "bin/bench"', '[programs]\nbuild = ["bench"]\n', "collides with the program bench built into /bin"),
    ('dst = "etc/appliance/init.conf"', "", "collides with the init's configuration"),
])
def test_a_file_may_not_land_on_the_init_or_a_program(tmp_path, files, programs, message):
    (tmp_path / "a").write_text("x")
    text = f'{programs}[[files]]\nsrc = "a"\n{files}\n'
    with pytest.raises(TemplateError, match=message):
        parse_template("t", text, tmp_path, {"bench"})
    twice = '[[files]]\nsrc = "a"\ndst = "etc/a"\n[[files]]\nsrc = "a"\ndst = "etc/a"\n'
    with pytest.raises(TemplateError, match="collides with the \\[\\[files\\]\\] entry from 'a'"):
        parse_template("t", twice, tmp_path)


def test_a_full_disk_while_building_names_the_disk_that_is_full(monkeypatch):
    import errno

    from appliance.assemble.actions import os_error_line

    full = OSError(errno.ENOSPC, "No space left on device")
    line = os_error_line(full, Path("build/benchmark/initrd"))
    assert line.startswith("no space left on the disk holding build/benchmark/initrd")
    # the error names the cache's file that was read; the disk that is full is the target's
    cache = OSError(errno.ENOSPC, "No space left on device", "/root/.cache/appliance/kernels/x")
    monkeypatch.setattr("appliance.fsutil.nearly_full", lambda p: str(p).startswith("build/"))
    assert "holding build/benchmark/kernel (building build/benchmark/kernel)" in os_error_line(
        cache, Path("build/benchmark/kernel"))
    # and when the cache's disk is the full one, that is the one named
    monkeypatch.setattr("appliance.fsutil.nearly_full", lambda p: str(p).startswith("/root/"))
    assert "holding /root/.cache/appliance/kernels/x (building build/benchmark/kernel)" in os_error_line(
        cache, Path("build/benchmark/kernel"))


def test_optional_kernel_fragments_are_checked_and_change_the_recipe(tmp_path):
    from dataclasses import replace

    from appliance.assemble import kernelchoice
    from appliance.assemble.config import BuildConfig

    traced = parse_template("t", '[appliance]\nkernel = "minimal"\nkernel_fragments = ["ftrace"]\n', tmp_path)
    assert traced.kernel_fragments == ("ftrace",)
    with pytest.raises(TemplateError, match="kernel_fragments: 'kgdb' is not one of: ftrace"):
        parse_template("t", '[appliance]\nkernel_fragments = ["kgdb"]\n', tmp_path)
    plain = replace(traced, kernel_fragments=())
    with_ftrace, without = (kernelchoice.minimal_recipe(BuildConfig(t, "", 0)) for t in (traced, plain))
    assert with_ftrace.key() != without.key() and with_ftrace.source_key() == without.source_key()
    assert any(name == "ftrace" and "CONFIG_FTRACE=y" in text for name, text in with_ftrace.fragments)


def test_packages_and_shell():
    t = parse("[packages]\nhost = ['python3']\nhost_files = ['/usr/lib/python3.11/**']\ndebian = ['busybox-static']\n"
              "exclude = ['usr/share/*']\n[init]\npayload = ['/usr/bin/python3', '-c', 'pass']\nshell = true\n")
    assert t.host == ("python3",) and t.host_files == ("/usr/lib/python3.11/**",) and t.debian == ("busybox-static",)
    assert t.exclude == ("usr/share/*",) and t.has_packages and t.shell == ("/bin/sh",)
    assert "shell /bin/sh\n" in init_conf(t)
    assert parse("[init]\nshell = ['/bin/busybox', 'sh']\n").shell == ("/bin/busybox", "sh")
    assert parse("").exclude is None and not parse("").has_packages and parse("").shell == ()


def test_aarch64_templates_boot_on_virt():
    from appliance.machines import Arch

    t = parse("[appliance]\narch = 'aarch64'\n[devicetree]\nprune = false\n")
    assert t.arch is Arch.AARCH64 and t.machine is Machine.VIRT and not t.dtb_prune
    assert parse("").arch is Arch.X86_64 and parse("").dtb_prune


@pytest.mark.parametrize(("text", "words"), [
    ("[appliance]\narch = 'riscv64'\n", "arch = 'riscv64' is not one of: x86_64, aarch64"),
    ("[appliance]\narch = 'aarch64'\n[vm]\nmachine = 'microvm'\n", "'microvm' is not an aarch64 machine (for aarch64: virt)"),
    ("[vm]\nmachine = 'virt'\n", "'virt' is not an x86_64 machine"),
    ("[appliance]\narch = 'aarch64'\nkernel = 'minimal'\n", "built for x86_64 only"),
    ("[appliance]\narch = 'aarch64'\n[rootfs]\ndisk = 'pmem'\n", "x86-only here"),
    ("[appliance]\narch = 'aarch64'\n[profiled]\nchannel = 'serial'\n", "use 'virtio' on aarch64"),
])
def test_what_aarch64_cannot_be_is_one_error(text, words):
    with pytest.raises(TemplateError, match=re.escape(words)):
        parse(text)


def test_arch_retargets_a_template_to_its_machine():
    from appliance.assemble.template import retarget
    from appliance.machines import Arch

    t = retarget(parse("[vm]\nmachine = 'q35-qboot'\n"), "aarch64")
    assert t.arch is Arch.AARCH64 and t.machine is Machine.VIRT
    with pytest.raises(TemplateError, match="not an aarch64 machine"):
        retarget(parse(""), "aarch64", Machine.MICROVM)
    with pytest.raises(TemplateError, match="x86-only here"):
        retarget(parse("[rootfs]\ndisk = 'pmem'\n"), "aarch64")


def test_an_erofs_root_with_an_overlay_reaches_the_inits_configuration():
    template = parse('[rootfs]\ndisk = "virtio-blk"\nformat = "erofs"\nwritable = "tmpfs"\n'
                     '[init]\npayload = ["/bin/sh"]\n[packages]\nhost = ["sh"]\n')
    assert "root /dev/vda erofs overlay\n" in init_conf(template)
    pmem = parse('[rootfs]\ndisk = "pmem"\nformat = "erofs"\n[vm]\nmachine = "pc-seabios"\n')
    assert "root /dev/pmem0 erofs dax\n" in init_conf(pmem)


@pytest.mark.parametrize("text, message", [
    ('[rootfs]\ndisk = "virtio-blk"\nwritable = "tmpfs"\n', 'writable = "tmpfs" is for a read-only root'),
    ('[rootfs]\nformat = "erofs"\n', "describe a root disk"),
    ('[rootfs]\ndisk = "virtio-blk"\nformat = "xfs"\n', "format = 'xfs' is not one of: ext4, erofs"),
    ('[image]\noci = "img"\n', 'give DIR:TAG'),
    ('[image]\noci = "img:1"\ndocker-archive = "x.tar"\n', "takes one of oci"),
])
def test_bad_root_formats_and_images_are_one_line(text, message):
    with pytest.raises(TemplateError, match=re.escape(message)):
        parse(text)


def test_an_image_template_needs_no_payload_and_its_config_lines_reach_the_init():
    template = parse('[image]\noci = "img:app"\n')
    assert template.image == ("oci", "img:app") and template.brings_files
    from dataclasses import replace

    ran = replace(template, payload=("/bin/app", "a b"), env=("MODE=x y",), workdir="/srv", user="1000:1000")
    conf = init_conf(ran)
    assert "payload /bin/app a%20b\n" in conf and "env MODE=x%20y\n" in conf
    assert "workdir /srv\n" in conf and "user 1000:1000\n" in conf


def test_an_erofs_root_on_the_minimal_kernel_brings_its_fragment_also_when_the_kernel_is_chosen_later():
    text = '[rootfs]\ndisk = "virtio-blk"\nformat = "erofs"\n'
    assert "erofs" in parse('[appliance]\nkernel = "minimal"\n' + text).kernel_fragments
    debian = parse(text)
    assert debian.kernel_fragments == ()  # Debian's kernel loads erofs as a module
    from dataclasses import replace

    from appliance.assemble.template import with_needed_fragments
    assert with_needed_fragments(replace(debian, kernel=Kernel.MINIMAL)).kernel_fragments == ("erofs",)  # KERNEL_RECIPE=
    assert with_needed_fragments(debian) is debian
