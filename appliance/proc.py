"""The one place that runs external programs.

Every subprocess of the package goes through `run()` (or `find_tool()` for programs
started elsewhere, like QEMU): argv lists only, the command logged at debug level, and a
typed error carrying argv, exit code and stderr. A missing program names its package.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from appliance.errors import ToolFailed, ToolMissing

log = logging.getLogger(__name__)

# Which Debian package provides each external program we use.
PACKAGES: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "diet": "dietlibc-dev",
    "gcc": "gcc",
    "strip": "binutils",
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "dpkg-scanpackages": "dpkg-dev",
    "dpkg-query": "dpkg",
    "cpio": "cpio",
    "mke2fs": "e2fsprogs",
    "setpriv": "util-linux",
    "depmod": "kmod",
    "patch": "patch",
    "qemu-img": "qemu-utils",
    "objcopy": "binutils",
    "make": "make",
    "bison": "bison",
    "flex": "flex",
    "bc": "bc",
    "tar": "tar",
    "cp": "coreutils",
    "grep": "grep",
    "git": "git",
}


def find_tool(name: str) -> str:
    """Return the path of program NAME, or raise ToolMissing naming its package."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, name)
        raise ToolMissing(f"{name} not found: install it with `apt-get install {package}`")
    return path


def _complete(argv: list[str], cwd: Path | None, env: dict[str, str] | None, timeout: float | None,
              text: bool) -> subprocess.CompletedProcess[Any]:
    """argv run to completion (its program found on PATH), output captured."""
    exe = find_tool(argv[0]) if os.sep not in argv[0] else argv[0]
    full = [exe, *argv[1:]]
    log.debug("run: %s", " ".join(full))
    try:
        return subprocess.run(full, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=text,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(full, -1, f"timed out after {timeout} s") from exc


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run argv to completion; return its output or raise ToolFailed/ToolMissing (a
    non-zero exit is returned, not raised, when CHECK is false)."""
    done = _complete(argv, cwd, env, timeout, text=True)
    if check and done.returncode != 0:
        raise ToolFailed(done.args, done.returncode, done.stderr or done.stdout)
    return done


def run_bytes(argv: list[str], *, timeout: float | None = None) -> bytes:
    """Run argv to completion and return its standard output as bytes (an archive
    streamed by a tool); failures as in run()."""
    done = _complete(argv, None, None, timeout, text=False)
    if done.returncode != 0:
        raise ToolFailed(done.args, done.returncode, done.stderr.decode("utf-8", "replace"))
    return bytes(done.stdout)
