"""An image that boots with its own init (`[image] init = "image"`): the checks that it
can, and the few files we add so the host sees its boot.

Our init still runs first, from the initramfs: it loads the modules, mounts the root,
brings up the network, fires `image_init` and execs the image's /sbin/init. From there
systemd boots the image as it would anywhere; the files added below only watch:

- `/usr/lib/appliance/probe`: our static probe program (the probe protocol, docs/CONTRACTS.md);
- a generator, `appliance-probe`, that fires `systemd_start`: systemd runs generators as
  soon as it has started;
- per probe point a oneshot unit `appliance-probe-NAME.service`, ordered after the target
  (or the named unit) and wanted by it (a named unit's: by multi-user.target, requiring
  the unit, so that it fires only once the unit has started), that fires the probe;
- `appliance-report.service` and its script: once `systemctl is-system-running --wait`
  says the boot is over, it fires `systemd_finished`, prints systemd's own view of the boot
  (systemd-analyze time, blame, critical-chain, the failed units) on the console between
  `appliance-systemd:` markers, and reboots at once (QEMU runs with -no-reboot, so it
  exits; the runner discards the disk's writes).

Every added path has `appliance` in its name: deleting them gives the image back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.assemble import cpio, layout
from appliance.assemble.initramfs import IMAGE_INIT
from appliance.assemble.layout import Placed
from appliance.assemble.template import Template
from appliance.errors import TemplateError
from appliance.machines import Arch
from appliance.probes import PORT_KERNEL, probe_table, unit_probe
from appliance.systemdview import MARK

PROBE = "usr/lib/appliance/probe"
REPORT = "usr/lib/appliance/report"
GENERATOR = "etc/systemd/system-generators/appliance-probe"
UNITS = "etc/systemd/system"
SOURCE = "appliance (the image's own init)"
TARGETS = ("sysinit.target", "basic.target", "multi-user.target")  # each has a built-in probe (probes.py)
ELF_MACHINE = {Arch.X86_64: 62, Arch.AARCH64: 183}  # e_machine


@dataclass(frozen=True)
class Point:
    """Where systemd fires a probe: after UNIT, wanted by WANTED_BY."""

    unit: str
    code: int
    name: str
    wanted_by: str


def points(template: Template) -> list[Point]:
    """The targets' probe points, then the named units'."""
    codes = {name: code for (port, code), name in probe_table(template.probes).items() if port == PORT_KERNEL}
    out = [Point(target, codes[unit_probe(target)], unit_probe(target), target) for target in TARGETS]
    return out + [Point(unit, codes[unit_probe(unit)], unit_probe(unit), "multi-user.target")
                  for unit in template.image_units]


def _unit(point: Point) -> str:
    # a named unit is started by us too, should the image not enable it; Requires, not
    # Wants: a unit that fails (or is not there) must leave its probe unfired, not fire it
    named = point.unit not in TARGETS
    return (f"# added by appliance: the probe {point.name} once {point.unit} has started (docs/TEMPLATES.md)\n"
            "[Unit]\n"
            f"Description=appliance probe {point.name}\n"
            "DefaultDependencies=no\n"
            f"After={point.unit}\n"
            + (f"Requires={point.unit}\n" if named else "") +
            "\n[Service]\n"
            "Type=oneshot\n"
            f"ExecStart=/{PROBE} {point.code:#x} {point.name}\n"
            # first in line once forked: jobs that start with it would delay the probe
            "CPUSchedulingPolicy=fifo\n"
            "CPUSchedulingPriority=99\n"
            "StandardOutput=tty\n"
            "TTYPath=/dev/console\n")


REPORT_UNIT = f"""# added by appliance: systemd's own view of the boot on the console, then the VM's end
[Unit]
Description=appliance report
DefaultDependencies=no
After=multi-user.target

[Service]
Type=exec
ExecStart=/{REPORT}
StandardOutput=tty
TTYPath=/dev/console
"""


def generator_script(start_code: int) -> str:
    """A generator: systemd runs its generators once it has started, before it loads a
    unit, which makes this the moment systemd starts (also after the image's own initrd).
    It generates nothing."""
    return f"""#!/bin/sh
# added by appliance (docs/TEMPLATES.md, "An image's own init"): the probe systemd_start
/{PROBE} {start_code:#x} systemd_start >/dev/console 2>&1
exit 0
"""


def report_script(finished_code: int) -> str:
    """The report: it waits for the end of the boot (its own start job is done once it
    runs, so it does not wait for itself), then prints and ends the VM. A forced reboot:
    power-off is not there on every machine (microvm without ACPI), a reboot always ends
    QEMU (-no-reboot), and the boot is measured already."""
    return f"""#!/bin/sh
# added by appliance (docs/TEMPLATES.md, "An image's own init")
export SYSTEMD_COLORS=0
state=$(systemctl is-system-running --wait 2>/dev/null)
/{PROBE} {finished_code:#x} systemd_finished
echo "{MARK} begin $state"
echo "{MARK} time"
systemd-analyze time --no-pager 2>&1
echo "{MARK} blame"
systemd-analyze blame --no-pager 2>&1 | head -n 40
echo "{MARK} critical-chain"
systemd-analyze critical-chain --no-pager 2>&1 | head -n 60
echo "{MARK} failed"
systemctl list-units --failed --plain --no-legend --no-pager --full 2>&1
echo "{MARK} end"
systemctl reboot --force --force
"""


def _fail(template: Template, message: str) -> TemplateError:
    return TemplateError(f"template {template.name}: image {template.image[1] if template.image else ''}: {message}")


def check(template: Template, tree: Sequence[Placed]) -> None:
    """The image can boot with its own init here: /sbin/init is systemd, for this
    architecture, and the report's shell and systemd-analyze are there."""
    found = layout.lookup(list(tree), IMAGE_INIT)
    if found is None:
        raise _fail(template, f"it has no {IMAGE_INIT}: init = 'image' boots the image's own init (install "
                              "systemd-sysv in it), or use init = 'appliance' with [init] payload")
    data = found.entry.data
    if not found.entry.path.endswith("lib/systemd/systemd"):
        raise _fail(template, f"its {IMAGE_INIT} is /{found.entry.path}, not systemd: the probes are systemd units "
                              "(an image with another init: use init = 'appliance' with [init] payload)")
    if data[:4] == b"\x7fELF":
        machine = int.from_bytes(data[18:20], "little")
        if machine != ELF_MACHINE[template.arch]:
            other = next((a.value for a, m in ELF_MACHINE.items() if m == machine), f"ELF machine {machine}")
            raise _fail(template, f"its {IMAGE_INIT} is for {other}, the appliance is {template.arch.value}: "
                                  f"use the image for {template.arch.value} (or set [appliance] arch)")
    for path, why in (("/bin/sh", "the report's shell"), ("/usr/bin/systemd-analyze", "systemd's own view")):
        if layout.lookup(list(tree), path) is None:
            raise _fail(template, f"it has no {path} ({why}): install it in the image")


def _link(wants: str, unit: str) -> Placed:
    return Placed(cpio.symlink(f"{UNITS}/{wants}.wants/{unit}", f"/{UNITS}/{unit}"), SOURCE)


def additions(template: Template, probe: bytes) -> list[Placed]:
    """What we add to the image: the probe program, a unit per probe point, the report."""
    codes = {name: code for (port, code), name in probe_table(template.probes).items() if port == PORT_KERNEL}
    out = [Placed(cpio.file(PROBE, probe, 0o755), SOURCE),
           Placed(cpio.file(REPORT, report_script(codes["systemd_finished"]).encode(), 0o755), SOURCE),
           Placed(cpio.file(GENERATOR, generator_script(codes["systemd_start"]).encode(), 0o755), SOURCE),
           Placed(cpio.file(f"{UNITS}/appliance-report.service", REPORT_UNIT.encode()), SOURCE),
           _link("multi-user.target", "appliance-report.service")]
    for point in points(template):
        unit = f"appliance-probe-{point.name}.service"
        out += [Placed(cpio.file(f"{UNITS}/{unit}", _unit(point).encode()), SOURCE), _link(point.wanted_by, unit)]
    return out


def adapt(template: Template, image: list[Placed], probe: bytes) -> list[Placed]:
    """IMAGE's files ready to boot with its own init: checked, without the image's
    resolv.conf where [network] brings the user network's (our init configures the
    guest's network), and with our additions."""
    check(template, image)
    kept = [p for p in image if not (template.network and p.entry.path == "etc/resolv.conf")]
    return kept + additions(template, probe)
