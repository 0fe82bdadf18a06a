"""What bundle.json records of a template: the command line with and without the
machine's words, the disks in boot order, the network and service, profiled, the Spec."""

import pytest

from appliance import netspec
from appliance.assemble import manifest
from appliance.assemble.template import load_template
from appliance.errors import TemplateError
from appliance.paths import ROOT
from tests.unit.assemble.test_template import parse


def test_the_machines_words_lead_and_cmdline_base_keeps_only_ours():
    t = parse("[vm]\nmachine = 'microvm'\ncmdline = 'quiet'\n")
    assert manifest.cmdline_base(t) == "panic=-1 quiet"
    assert manifest.cmdline(t).startswith("console=ttyS0 pci=off") and manifest.cmdline(t).endswith("panic=-1 quiet")


def test_a_command_line_too_long_with_the_machines_words_is_refused():
    with pytest.raises(TemplateError, match="with the machine's own words"):
        manifest.cmdline(parse(f"[vm]\ncmdline = '{'x' * 2030}'\n"))


def test_the_root_disk_comes_first_and_the_boot_loaders_disk_after_it():
    assert manifest.disks(parse("")) == ()
    assert manifest.disks(parse("[rootfs]\ndisk = 'pmem'\n")) == (("rootfs.img", "pmem"),)
    both = parse("[rootfs]\ndisk = 'virtio-blk'\n[vm]\nmachine = 'q35-ovmf'\nloader = 'systemd-boot'\n")
    assert manifest.disks(both) == (("rootfs.img", "virtio-blk"), ("boot.img", "boot"))


def test_a_service_template_records_its_forwards_readiness_and_the_guests_network():
    facts = manifest.network_facts(load_template(ROOT / "rootfs_templates" / "web-minimal.toml"))
    assert facts["service"]["ready"] == "http:80/index.html"
    network = facts["network"]
    assert network["forwards"] == ["tcp:127.0.0.1:0-:80"] and network["control"] == netspec.CONTROL_PORT
    assert network["guest"]["address"] == netspec.GUEST_ADDRESS
    assert manifest.network_facts(parse("")) == {} and manifest.profiled_facts(parse("")) is None


def test_the_spec_carries_what_the_runner_needs_and_no_firmware_file_off_qboot():
    t = parse("[vm]\nmachine = 'q35-qboot'\nmemory_mib = 96\n")
    spec = manifest.spec(t, build={"template": t.name}, transports=["virtio_pci"], device_tree=None, uki=False,
                         minimal_kernel=True)
    assert spec.firmware and spec.memory_mib == 96 and spec.virtio_transports == ("virtio_pci",)
    assert not spec.kernel_acpi and spec.cmdline == manifest.cmdline(t) and spec.disks == ()
    assert not manifest.spec(parse(""), build={}, transports=[], device_tree=None, uki=False,
                             minimal_kernel=False).firmware
