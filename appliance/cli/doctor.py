"""`appliance doctor`: what this machine has, and what to install or change."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance import proc
from appliance.assemble.release import ISOLINUX_BIN, LDLINUX_C32
from appliance.boot import accel, perf
from appliance.machines import Accel
from appliance.proc import PACKAGES

TOOLS = ("qemu-system-x86_64", "setpriv", "diet", "gcc", "strip", "objcopy", "apt-get", "dpkg-deb", "depmod",
         "cpio", "mke2fs", "qemu-img", "patch",
         "make", "bison", "flex", "bc")  # the last four: the minimal kernel's build
# Files the release verb needs, with the package that ships each.
FILES = ((ISOLINUX_BIN, "isolinux"), (LDLINUX_C32, "syslinux-common"))
# Clocksources that make host timestamps cheap and stable.
GOOD_CLOCKSOURCES = ("tsc", "kvm-clock")
OK, WARN, FAIL = "ok", "warn", "FAIL"  # warn: works, but slower or with less; FAIL: something will not work
KVM_ADVICE = ("boots use TCG, many times slower: on bare metal load kvm_intel or kvm_amd and give this user "
              "/dev/kvm; in a VM, ask for nested virtualization")


def _instruction_clock() -> tuple[str, str]:
    """Whether --clock instructions|virtual can load our TCG plugin with this QEMU."""
    from appliance.assemble import plugin
    from appliance.errors import ApplianceError

    try:
        built = plugin.ensure(plugin.installed_qemu())
    except ApplianceError as exc:
        return WARN, f"instruction clock not available ({exc}); --clock wall still works"
    return OK, f"instruction clock: {built}"


def checks() -> list[tuple[str, str]]:
    """(status, line) pairs; each line that is not ok says what to do."""
    out: list[tuple[str, str]] = []
    for tool in TOOLS:
        path = shutil.which(tool)
        out.append((OK, f"{tool}: {path}") if path else
                   (FAIL, f"{tool} missing: apt-get install {PACKAGES.get(tool, tool)}"))
    for needed, package in FILES:
        out.append((OK, f"{needed.name}: {needed}") if needed.is_file() else
                   (FAIL, f"{needed} missing (ISO releases need it): apt-get install {package}"))
    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        listing = proc.run([qemu, "-trace", "help"], timeout=30, check=False).stdout
        traced = "memory_region_ops_write" in listing
        out.append((OK, "QEMU trace backend usable (memory_region_ops_write)") if traced else
                   (FAIL, "QEMU has no memory_region_ops_write trace event: install Debian's qemu-system-x86, "
                    "or use --channel exit or serial"))
        works, why = accel.kvm_works(qemu)
        out.append((OK, f"KVM usable: {why}") if works else (WARN, f"KVM not usable ({why}): {KVM_ADVICE}"))
        ok, reason = perf.available(Accel.KVM if works else Accel.TCG)
        out.append((OK if ok else WARN, f"perf channel {'available' if ok else 'not available'}: {reason}"))
        out.append(_instruction_clock())
    clocksource = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    current = clocksource.read_text().strip() if clocksource.exists() else "unknown"
    out.append((OK if current in GOOD_CLOCKSOURCES else WARN, f"host clocksource {current}" + (
        "" if current in GOOD_CLOCKSOURCES else
        f": timestamps cost more and jitter; prefer {' or '.join(GOOD_CLOCKSOURCES)} if the host offers it")))
    return out
