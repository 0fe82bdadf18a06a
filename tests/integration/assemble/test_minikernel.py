"""The minimal kernel recipe, built for real from Debian's linux-source-6.1 (minutes the
first time, then cached): config assertions, the probe patch with and without its
option, and the benchmark appliance booted on it under microvm and q35-qboot."""

import json
from pathlib import Path

import pytest

from appliance import bundle
from appliance.assemble import kernelfetch, minikernel
from appliance.assemble.minikernel import MINIMAL, SOURCE_LOCK
from appliance.boot import measure
from appliance.boot.qemu import BootSpec
from appliance.errors import KernelError
from tests.conftest import BUILD, ROOT, appliance, scons

pytestmark = pytest.mark.boot

KERNEL_PROBES = ("linux_start_kernel", "linux_start_user")


@pytest.fixture(scope="module")
def tree():
    """The patched source tree the recipe builds from, and the lock's digest."""
    lock = minikernel.read_lock(SOURCE_LOCK)
    cache = kernelfetch.cache_dir()
    patch = minikernel.patches()
    recipe = minikernel.Recipe(lock.deb_sha256, (), patch, "none")
    return minikernel.patched_tree(minikernel.fetch_source(lock, cache), patch, cache, recipe.source_key()), lock


def _template(tmp_path_factory, name: str, machine: str, compression: str) -> Path:
    path = tmp_path_factory.mktemp("t") / f"{name}.toml"
    text = (ROOT / "rootfs_templates/benchmark-minimal.toml").read_text()
    text = text.replace('machine = "microvm"', f'machine = "{machine}"')
    path.write_text(text.replace('kernel = "minimal"', f'kernel = "minimal"\nkernel_compression = "{compression}"'))
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """benchmark-minimal as shipped (vmlinux through PVH, microvm), on q35-qboot, and as a
    zstd bzImage on q35-qboot (qboot's bzImage path)."""
    out = {}
    for name, machine, compression in (("mk-microvm", "microvm", "none"), ("mk-qboot", "q35-qboot", "none"),
                                       ("mk-qboot-zstd", "q35-qboot", "zstd")):
        template = _template(tmp_path_factory, name, machine, compression)
        done = scons("appliance", f"TEMPLATE={template}")
        assert done.returncode == 0, done.stdout + done.stderr
        out[name] = (template, BUILD / name)
    return out


def _boot(path: Path) -> measure.BootRun:
    return measure.boot(BootSpec(bundle.load(path), "tcg", 120), echo=None)


@pytest.mark.parametrize("name, entry", [("mk-microvm", "kernel_entry"), ("mk-qboot", "linux_start_pvhboot"),
                                         ("mk-qboot-zstd", "linux_start_boot")])
def test_kernel_probes_arrive_between_kernel_entry_and_init(bundles, name, entry):
    run = _boot(bundles[name][1])
    times = {e.name: e.host_time_ns for e in run.events}
    assert times[entry] < times["linux_start_kernel"] < times["linux_start_user"] < times["init_start"]
    assert run.payload_status == 0
    manifest = bundle.load(bundles[name][1]).manifest
    assert manifest["build"]["kernel"]["source"] == "minimal"
    # the probe patch writes each probe once: no repeats from the kernel
    assert [e.name for e in run.events].count("linux_start_user") == 1


def test_uncompressed_kernel_is_a_stripped_elf_and_compressed_one_a_bzimage(bundles):
    elf = (bundles["mk-qboot"][1] / "kernel").read_bytes()
    bz = (bundles["mk-qboot-zstd"][1] / "kernel").read_bytes()
    assert elf[:4] == b"\x7fELF" and bz[0x202:0x206] == b"HdrS"
    assert len(bz) < len(elf) / 4


def test_second_build_does_nothing(bundles):
    done = scons("appliance", f"TEMPLATE={bundles['mk-microvm'][0]}")
    assert done.returncode == 0 and "is up to date" in done.stdout, done.stdout


def test_exit_channel_stops_at_a_kernel_probe(bundles):
    target = bundle.load(bundles["mk-microvm"][1])
    probes = ["linux_start_kernel", "linux_start_user", "init_start"]
    run = measure.boot_exit(BootSpec(target, "tcg", 120), probes)
    # each boot ended at its own probe: probe 6 kept quiet in the boots waiting for 7 (the
    # events come from three boots, so close ones may swap places in time order)
    assert sorted(e.name for e in run.events) == sorted(["qemu_exec", *probes]) and run.warnings == []


def test_a_symbol_kconfig_drops_fails_with_what_it_depends_on(tree, tmp_path):
    source, lock = tree
    fragments = (("broken", "CONFIG_VIRTIO_BLK=y\n# CONFIG_BLOCK is not set\n"),)
    recipe = minikernel.Recipe(lock.deb_sha256, fragments, "", "none")
    with pytest.raises(KernelError) as caught:
        minikernel._configure(recipe, source, tmp_path / "out", False)
    message = str(caught.value)
    assert "CONFIG_VIRTIO_BLK=y became n (depends on BLK_DEV && VIRTIO)" in message
    assert "recipes/kernel/minimal/" in message


def test_the_patched_kernel_still_builds_without_the_probe_option(tree, tmp_path):
    source, lock = tree
    recipe = minikernel.Recipe(lock.deb_sha256, minikernel.read_fragments(MINIMAL, ("base", "virt")), "", "none")
    out = tmp_path / "out"
    minikernel._configure(recipe, source, out, False)
    assert "# CONFIG_APPLIANCE_PROBES is not set" in (out / ".config").read_text()
    minikernel._make(source, out, ["-j2", "init/main.o"], False, timeout=900)
    assert (out / "init" / "main.o").stat().st_size > 0


def test_a_failing_kernel_build_shows_makes_last_lines(tree, tmp_path):
    source, _ = tree
    with pytest.raises(KernelError) as caught:
        minikernel._make(source, tmp_path / "out", ["no-such-target"], False)
    message = str(caught.value)
    # make's own last lines, here its complaint about the unconfigured object tree
    assert "make no-such-target failed" in message and "Configuration file" in message and "Error 2" in message
    assert "rerun with -v" in message


def test_a_script_payload_on_a_kernel_without_script_support_fails_at_build_time(minimal_kernel_bundle, tmp_path):
    """It built, then failed at boot with 'cannot exec payload'; now the build says what
    the kernel lacks (the minimal kernel's base fragment has no BINFMT_SCRIPT)."""
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "sh").write_bytes((BUILD / "programs" / "init").read_bytes())  # any ELF stands in for a shell
    template = tmp_path / "script.toml"
    template.write_text('[appliance]\nkernel = "minimal"\n[init]\npayload = ["/opt/run.sh"]\n'
                        '[[files]]\nsrc = "run.sh"\ndst = "opt/run.sh"\nmode = 0o755\n'
                        '[[files]]\nsrc = "sh"\ndst = "bin/sh"\nmode = 0o755\n')
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode != 0
    assert "[init] payload /opt/run.sh is a #! script, and kernel" in done.stderr
    assert "has no CONFIG_BINFMT_SCRIPT" in done.stderr and 'kernel_fragments = ["userland"]' in done.stderr
    assert not (BUILD / "script").exists()  # no half bundle left behind


def test_the_minimal_kernel_skips_the_apic_timer_calibration_and_the_poisoning_of_freed_init_memory(
        minimal_kernel_bundle):
    """appliance-virt.patch: the LAPIC timer's period comes from apic_bus_hz= on the
    built-in command line (QEMU's APIC counts at 1 GHz; HZ is 250), so the kernel no longer
    calibrates it against the PIT; the freed init memory is not written over first."""
    done = appliance("run", str(minimal_kernel_bundle), "--accel", "tcg", "--append", "apic=verbose ignore_loglevel")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lapic timer already calibrated 4000000" in done.stdout
    assert "calibrating APIC timer" not in done.stdout
    assert "Freeing unused kernel image (initmem) memory" in done.stdout  # still freed
    assert "apic_bus_hz=1000000000" in done.stdout  # the built-in command line, as the kernel logs it


def test_an_erofs_root_on_the_minimal_kernel_brings_its_fragment_and_inspect_cost_prices_it(minimal_kernel_bundle,
                                                                                           tmp_path):
    """benchmark-minimal with its program on an EROFS root: the erofs fragment (EROFS and
    overlayfs built in) comes by itself, the payload runs from the root, and
    `inspect --cost --fragments` prices the fragment against the kernel without it
    (benchmark-minimal's own, already built: one kernel variant for both checks)."""
    text = (ROOT / "rootfs_templates" / "benchmark-minimal.toml").read_text()
    (tmp_path / "bmerofs.toml").write_text(text + '\n[rootfs]\ndisk = "virtio-blk"\nformat = "erofs"\n')
    done = scons("appliance", f"TEMPLATE={tmp_path / 'bmerofs.toml'}")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = BUILD / "bmerofs"
    assert "erofs" in bundle.load(folder).kernel_facts["fragments"]
    run = appliance("run", str(folder), "--accel", "tcg")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "appliance-init: payload exited with status 0" in run.stdout
    out = tmp_path / "cost.json"
    done = appliance("inspect", str(folder), "--cost", "--fragments", "-n", "2", "--accel", "tcg", "--json",
                     "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    table = json.loads(done.stdout)["cost"]
    assert list(table["fragments"]) == ["erofs"] and table["fragments"]["erofs"] is not None
    assert table["mount_ms"] is not None and {r["source"] for r in table["sources"]} >= {"init", "program bench"}
    # a Debian-kernel bundle has no fragments to price: one line, before any boot
    assert scons("appliance", "TEMPLATE=minimal").returncode == 0
    refused = appliance("inspect", str(BUILD / "minimal"), "--cost", "--fragments", "--accel", "tcg")
    assert refused.returncode != 0 and refused.stderr.strip().splitlines()[-1].startswith("error: --fragments")
