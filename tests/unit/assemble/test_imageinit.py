"""An image booted with its own init: the template's settings, the checks of the image,
what the build adds to it, and the init's configuration."""

import pytest

from appliance.assemble import cpio, imageinit
from appliance.assemble.initramfs import init_conf
from appliance.assemble.layout import Placed
from appliance.assemble.template import parse_template
from appliance.errors import TemplateError
from tests.conftest import ROOT

SYSTEMD = """
[image]
rootfs = "debian.tar"
init = "image"
units = ["ssh.service", "getty@ttyS0.service"]
[rootfs]
disk = "virtio-blk"
[network]
[service]
ready = "tcp:22"
[probes]
mine = 0x7f
"""


def parse(text: str):
    return parse_template("t", text, ROOT)


def test_the_image_init_template_probes_targets_and_named_units_on_free_codes():
    t = parse(SYSTEMD)
    assert t.image_init and t.image_units == ("ssh.service", "getty@ttyS0.service")
    assert t.mounts == ()  # systemd mounts what it needs
    assert dict((n, c) for c, n in t.probes) == {"mine": 0x7F, "ssh_service": 0x7E, "getty_ttyS0_service": 0x7D}
    assert [(p.unit, p.code, p.wanted_by) for p in imageinit.points(t)] == [
        ("sysinit.target", 0x17, "sysinit.target"), ("basic.target", 0x18, "basic.target"),
        ("multi-user.target", 0x19, "multi-user.target"), ("ssh.service", 0x7E, "multi-user.target"),
        ("getty@ttyS0.service", 0x7D, "multi-user.target")]


@pytest.mark.parametrize("text, message", [
    ('[image]\nrootfs = "a.tar"\ninit = "systemd"\n', "'appliance' .* or 'image'"),
    ('[image]\nrootfs = "a.tar"\nunits = ["ssh.service"]\n', "need init = 'image'"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\nunits = ["ssh"]\n', "not a systemd unit name"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\nunits = ["a.service", "a.service"]\n', "one unit twice"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\n[init]\npayload = ["/bin/sh"]\n', r"\[init\] payload belongs"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\n[init]\nmounts = ["proc"]\n', r"\[init\] mounts belongs"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\n[profiled]\n', r"\[profiled\] belongs"),
    ('[image]\nrootfs = "a.tar"\noci = "x:y"\n', "takes one of"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\ninitrd = "dracut"\n', "initrd = 'dracut': 'appliance' .* or 'image'"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\ninitrd = "image"\n', "goes with the image's kernel"),
    ('[appliance]\nkernel = "image"\n[image]\nrootfs = "a.tar"\ninitrd = "image"\n', "starts the image's own init"),
    ('[appliance]\nkernel = "image"\n[image]\nrootfs = "a.tar"\ninit = "image"\ninitrd = "image"\n[rootfs]\n'
     'disk = "virtio-blk"\nformat = "erofs"\n', "mounts the root itself, read-write"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\nunits = ["a.service"]\n[probes]\na_service = 0x20\n',
     "is a name"),
    ('[image]\nrootfs = "a.tar"\ninit = "image"\nunits = [' + ", ".join(f'"u{i}.service"' for i in range(97)) + ']\n',
     "names 97 units; \\[probes\\] leaves 96 codes"),
])
def test_image_init_settings_that_make_no_sense_are_one_line(text, message):
    with pytest.raises(TemplateError, match=message):
        parse(text)


def test_the_init_execs_the_image_init_after_the_network_and_has_no_stop_channel():
    conf = init_conf(parse(SYSTEMD))
    assert "exec_init /sbin/init" in conf and "net eth0 " in conf
    assert "control" not in conf and "payload" not in conf and "mount " not in conf


def test_with_the_images_initrd_our_init_only_fires_its_probes_and_execs_it():
    from appliance.assemble import manifest
    from appliance.assemble.initramfs import contents

    text = SYSTEMD.replace("[image]", '[appliance]\nkernel = "image"\n[image]\ninitrd = "image"', 1)
    t = parse(text)
    conf = init_conf(t)
    assert "exec_init /init" in conf and "net eth0 " in conf  # the network is still ours
    assert "root " not in conf  # the image's initrd mounts the root
    assert "rdinit=/appliance/init root=/dev/vda rw" in manifest.cmdline(t)
    assert "rdinit=/appliance/init root=/dev/vda rw" in manifest.cmdline_base(t)  # kept by --machine too
    paths = {p.entry.path for p in contents(t, b"INIT", {}).initrd}
    assert "appliance/init" in paths and "init" not in paths  # beside the image's /init, not over it


def elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\0" * 11 + machine.to_bytes(2, "little") + b"\0" * 40


def image(init: bytes = elf(62), target: str = "../lib/systemd/systemd", sh: bool = True) -> list[Placed]:
    entries = [cpio.symlink("sbin", "usr/sbin"), cpio.symlink("bin", "usr/bin"), cpio.directory("usr/bin"),
               cpio.symlink("usr/sbin/init", target), cpio.file("usr/lib/systemd/systemd", init, 0o755),
               cpio.file("usr/bin/systemd-analyze", elf(62), 0o755), cpio.file("etc/resolv.conf", b"nameserver 1\n")]
    if sh:
        entries.append(cpio.file("usr/bin/sh", elf(62), 0o755))
    return [Placed(e, "oci:sha256:x") for e in entries]


@pytest.mark.parametrize("tree, message", [
    ([p for p in image() if p.entry.path != "usr/sbin/init"], "no /sbin/init"),
    (image(target="../bin/sh"), "not systemd"),
    (image(init=elf(183)), "for aarch64, the appliance is x86_64"),
    (image(sh=False), "no /bin/sh"),
])
def test_an_image_that_cannot_boot_with_its_own_init_is_one_line(tree, message):
    with pytest.raises(TemplateError, match=message):
        imageinit.check(parse(SYSTEMD), tree)


def test_the_build_adds_a_unit_per_probe_point_and_the_report_and_keeps_the_image():
    t = parse(SYSTEMD)
    placed = imageinit.adapt(t, image(), b"PROBE")
    paths = {p.entry.path: p.entry for p in placed}
    assert "etc/resolv.conf" not in paths  # [network]: the user network's comes with our files
    assert paths["usr/lib/appliance/probe"].data == b"PROBE"
    ssh = paths["etc/systemd/system/appliance-probe-ssh_service.service"].data.decode()
    assert "After=ssh.service\nRequires=ssh.service\n" in ssh and "ExecStart=/usr/lib/appliance/probe 0x7e ssh_service" in ssh
    sysinit = paths["etc/systemd/system/appliance-probe-sysinit_target.service"].data.decode()
    assert "After=sysinit.target\n" in sysinit and "Wants=" not in sysinit and "DefaultDependencies=no" in sysinit
    link = paths["etc/systemd/system/multi-user.target.wants/appliance-probe-ssh_service.service"]
    assert link.kind == "symlink" and link.data == b"/etc/systemd/system/appliance-probe-ssh_service.service"
    assert paths["etc/systemd/system/sysinit.target.wants/appliance-probe-sysinit_target.service"].kind == "symlink"
    generator = paths["etc/systemd/system-generators/appliance-probe"]
    assert generator.mode & 0o111 and "probe 0x1b systemd_start" in generator.data.decode()
    report = paths["usr/lib/appliance/report"].data.decode()
    assert "is-system-running --wait" in report and "probe 0x1a systemd_finished" in report
    assert report.index("systemd_finished") < report.index("systemd-analyze time") < report.index("reboot --force --force")
    # every added path says whose it is: deleting them gives the image back
    added = {p.entry.path for p in placed} - {p.entry.path for p in image()}
    assert added and all("appliance" in path for path in added)
