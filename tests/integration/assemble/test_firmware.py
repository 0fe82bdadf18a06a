"""qboot built by SCons with BENCHMARK_HACK, and one bundle booted under every machine."""

import pytest

from appliance import bundle
from appliance.boot import measure
from appliance.boot.qemu import BootSpec
from appliance.machines import Machine
from tests.conftest import BUILD, ROOT, scons

pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def qboot_bundle(tmp_path_factory):
    template = tmp_path_factory.mktemp("t") / "benchmark-qboot.toml"
    template.write_text((ROOT / "rootfs_templates/benchmark.toml").read_text()
                        .replace('machine = "microvm"', 'machine = "q35-qboot"'))
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stdout + done.stderr
    return bundle.load(BUILD / "benchmark-qboot")


def test_qboot_is_64k_and_rebuilds_only_when_needed(qboot_bundle):
    assert (BUILD / "firmware/qboot.bin").stat().st_size == 65536
    assert qboot_bundle.firmware is not None and qboot_bundle.firmware.read_bytes() == \
        (BUILD / "firmware/qboot.bin").read_bytes()
    again = scons("firmware")
    assert again.returncode == 0 and "up to date" in again.stdout


def boot(target):
    return measure.boot(BootSpec(target, "tcg", 120))


def test_q35_qboot_emits_firmware_probes_in_order(qboot_bundle):
    run = boot(qboot_bundle)
    sources = {e.name: e.source for e in run.events}
    order = [e.name for e in run.events if e.name in ("fw_start", "fw_do_boot", "linux_start_boot", "init_start")]
    assert order == ["fw_start", "fw_do_boot", "linux_start_boot", "init_start"]
    assert sources["fw_start"] == sources["linux_start_boot"] == "trace"
    assert "fw_entry" not in sources and "kernel_entry" not in sources  # real probes, nothing inferred
    p = run.phases
    assert 0 < p["fw_setup"] < p["firmware"] and 0 < p["fw_load"] < p["firmware"]
    assert abs(p["fw_setup"] + p["fw_load"] - p["firmware"]) < 0.01


@pytest.mark.parametrize("machine", [Machine.MICROVM, Machine.PC_SEABIOS])
def test_same_bundle_under_other_profiles_infers_firmware_bounds(qboot_bundle, machine):
    run = boot(qboot_bundle.with_machine(machine))
    names = [e.name for e in run.events]
    assert "fw_start" not in names and "fw_entry" in names and "kernel_entry" in names
    assert names.index("fw_entry") < names.index("kernel_entry") < names.index("init_start")
    assert run.phases["firmware"] > 0 and run.phases["payload"] > 0


def test_tree_without_qboot_is_one_clear_error(tmp_path):
    template = tmp_path / "q.toml"
    template.write_text('[vm]\nmachine = "q35-qboot"\n')
    done = scons("appliance", f"TEMPLATE={template}", f"QBOOT_SRC={tmp_path}")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not a qboot source tree (missing code16.c, code32seg.c, cstart.S): "
        "point QBOOT_SRC at qemu's roms/qboot"]
