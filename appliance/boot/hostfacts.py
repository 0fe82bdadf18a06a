"""Facts about the host that every result is stamped with."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from appliance import __version__, proc
from appliance.errors import ApplianceError
from appliance.machines import Arch
from appliance.paths import ROOT


def _first_line(path: str, prefix: str = "") -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if prefix else line.strip()
    except OSError:
        pass
    return None


def git_revision() -> str | None:
    """The checkout's commit (with -dirty for uncommitted changes), or None outside git."""
    try:
        head = proc.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], timeout=5).stdout.strip()
        dirty = proc.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], timeout=5).stdout
    except (OSError, ApplianceError):  # no git, not a checkout, or git hung
        return None
    return head + ("-dirty" if dirty.strip() else "")


def collect(arch: Arch) -> dict[str, Any]:
    """The host's facts for boots of ARCH bundles: the QEMU recorded is the one that
    boots them (qemu-system-aarch64 for an aarch64 bundle), with its version."""
    from appliance.boot.qemu import binary, qemu_version

    qemu = binary(arch)
    return {
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "host_name": platform.node(),
        "cpus": os.cpu_count(),
        "host_kernel": platform.release(),
        "clocksource": _first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "loadavg_at_start": list(os.getloadavg()),
        "qemu_path": qemu,
        "qemu_version": qemu_version(qemu),
        "tool_version": __version__,
        "tool_git_revision": git_revision(),
    }
