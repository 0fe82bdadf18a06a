"""Facts about the host that every result is stamped with."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from appliance import __version__
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
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


def qemu_version(qemu: str) -> str:
    done = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=10, check=False)
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def collect(qemu: str) -> dict[str, Any]:
    return {
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "host_kernel": platform.release(),
        "clocksource": _first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "loadavg_at_start": list(os.getloadavg()),
        "qemu_path": qemu,
        "qemu_version": qemu_version(qemu),
        "tool_version": __version__,
        "tool_git_revision": git_revision(),
    }
