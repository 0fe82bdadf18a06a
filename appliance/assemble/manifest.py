"""What bundle.json records of a template beyond its files: the network and service the
runner sets up and checks, profiled's channel, an image's own init, the machine's command
line; and the bundle's Spec, which bundle.write_manifest seals. The SCons adapter
(actions.make_bundle) gathers the build's facts and calls it."""

from __future__ import annotations

from typing import Any

from appliance import bundle, netspec
from appliance.assemble import initramfs
from appliance.assemble.template import PROFILED_DEVICES, Loader, RootDisk, Template
from appliance.errors import TemplateError
from appliance.machines import Machine, cmdline_problem, shape


def cmdline_base(template: Template) -> str:
    """The command line without the machine's words (what booting the bundle as
    another machine starts from): panic=-1, the image's initrd's words, the template's."""
    return " ".join(filter(None, ("panic=-1", _image_initrd_words(template), template.cmdline)))


def cmdline(template: Template) -> str:
    """The kernel command line: the machine's words, then cmdline_base's."""
    line = " ".join(filter(None, (shape(template.machine).cmdline, cmdline_base(template))))
    problem = cmdline_problem(line)
    if problem:
        raise TemplateError(f"template {template.name}: {problem} ([vm] cmdline with the machine's own words)")
    return line


def _image_initrd_words(template: Template) -> str:
    """With the image's own initrd: our init first (it fires its probes and execs the
    initrd's /init), and the root the image's initrd mounts, read-write."""
    if not template.image_initrd:
        return ""
    return f"rdinit=/{initramfs.WRAPPER_INIT} root={initramfs.ROOT_DEVICE[template.root]} rw"


def spec(template: Template, *, build: dict[str, Any], transports: list[str], device_tree: dict[str, Any] | None,
         uki: bool, minimal_kernel: bool) -> bundle.Spec:
    """The bundle's Spec for TEMPLATE, built as BUILD says."""
    network = network_facts(template)
    return bundle.Spec(
        name=template.name, cmdline=cmdline(template),
        cmdline_base=cmdline_base(template),
        machine=template.machine, memory_mib=template.memory_mib, cpus=template.cpus, user_probes=template.probes,
        build=build, disks=disks(template),
        firmware=template.machine is Machine.Q35_QBOOT, device_tree=device_tree, uki=uki,
        virtio_transports=tuple(transports),
        kernel_acpi=not minimal_kernel,  # tinyconfig + our fragments: no ACPI (see qemu.argv)
        network=network.get("network"), service=network.get("service"), profiled=profiled_facts(template),
        image_init={"units": list(template.image_units)} if template.image_init else None)


def disks(template: Template) -> tuple[tuple[str, str], ...]:
    """(file, kind) of the bundle's disks: the root disk first (the guest's first disk,
    /dev/vda or pmem0), then the boot loader's disk, which the firmware boots."""
    root = () if template.root is RootDisk.NONE else (("rootfs.img", template.root.value),)
    boot = ((bundle.BOOT_DISK, bundle.BOOT_KIND),) if template.loader is not Loader.NONE else ()
    return (*root, *boot)


def profiled_facts(template: Template) -> dict[str, Any] | None:
    """What the runner needs to read profiled: its channel, the guest device, the sampling."""
    if not template.profiled:
        return None
    return {"channel": template.profiled, "device": PROFILED_DEVICES[template.profiled],
            "sample_ms": template.profiled_sample_ms}


def network_facts(template: Template) -> dict[str, Any]:
    """bundle.json's network and service settings: what the runner sets up and checks."""
    facts: dict[str, Any] = {}
    if template.network:
        facts["network"] = {"forwards": [f.spec() for f in template.forwards], "restrict": template.restrict,
                            "control": netspec.CONTROL_PORT,
                            "guest": {"interface": netspec.INTERFACE, "address": netspec.GUEST_ADDRESS,
                                      "netmask": netspec.NETMASK, "gateway": netspec.GATEWAY, "dns": netspec.DNS}}
    if template.ready:
        facts["service"] = {"ready": template.ready.spec(), "send": template.send}
    return facts
