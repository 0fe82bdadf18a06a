"""The instruction clock's TCG plugin (plugin/insncount.c): built against the plugin
header of the installed QEMU's own version, once, into the cache.

The header comes from Debian's qemu source package pinned by plugin/qemu-plugin.lock
(the package qboot is built from). A QEMU of another Debian version, or one that is not
Debian's, is refused in one line before anything is compiled: a plugin built against
another API may load and count wrongly. APPLIANCE_QEMU_PLUGIN_HEADER names a folder
holding the header of your own QEMU instead (then you vouch for the match)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from pathlib import Path

from appliance import proc
from appliance.assemble import firmware, kernelfetch
from appliance.errors import ApplianceError, ToolFailed
from appliance.paths import ROOT

SOURCE = ROOT / "plugin" / "insncount.c"
LOCK = ROOT / "plugin" / "qemu-plugin.lock"
HEADER = "qemu-plugin.h"
HEADER_ENV = "APPLIANCE_QEMU_PLUGIN_HEADER"
CFLAGS = ("-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror")


class PluginError(ApplianceError):
    """The instruction clock's plugin cannot be had for this QEMU."""


def installed_qemu() -> str:
    """The first line of the x86 QEMU's `--version` (the one the plugin is for)."""
    done = proc.run([proc.find_tool("qemu-system-x86_64"), "--version"], timeout=30)
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def debian_version(version_line: str) -> str | None:
    """The Debian package version in `qemu-system-x86_64 --version`'s first line
    ("... (Debian 1:7.2+dfsg-7+deb12u18+b3)"), without a binNMU suffix (+bN: the same
    source rebuilt), or None for a QEMU that is not Debian's."""
    match = re.search(r"\(Debian ([^)]+)\)", version_line)
    return re.sub(r"\+b\d+$", "", match[1]) if match else None


def header_folder(version_line: str, cache: Path) -> Path:
    """The folder holding qemu-plugin.h for the QEMU whose --version is VERSION_LINE."""
    given = os.environ.get(HEADER_ENV)
    if given:
        if not (Path(given) / HEADER).is_file():
            raise PluginError(f"{HEADER_ENV}={given} has no {HEADER}: point it at your QEMU's include/qemu folder")
        return Path(given)
    lock = firmware.read_lock(LOCK)
    found = debian_version(version_line)
    if found != lock.version:
        raise PluginError(f"the instruction clock's plugin is built against QEMU {lock.version}'s plugin API and "
                          f"this QEMU is {found or version_line!r}: install Debian 12's qemu-system-x86, or set "
                          f"{HEADER_ENV} to your QEMU's include/qemu folder")
    return firmware.fetch_debian(lock, cache, name="qemu-plugin-header", marker=HEADER)


@functools.lru_cache(maxsize=4)
def ensure(version_line: str, cache: Path | None = None) -> Path:
    """The plugin for the QEMU of VERSION_LINE: from the cache, or compiled there once
    (keyed by the source and the header, so an edit of either builds it again)."""
    cache = cache or kernelfetch.cache_dir()
    include = header_folder(version_line, cache)
    key = hashlib.sha256(SOURCE.read_bytes() + (include / HEADER).read_bytes()).hexdigest()[:16]
    target = cache / "plugin" / key / "libinsncount.so"
    if target.is_file():
        return target
    (cache / "plugin").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache / "plugin", prefix=".build-") as tmp:
        partial = Path(tmp) / target.name
        try:
            proc.run(["gcc", *CFLAGS, f"-I{include}", str(SOURCE), "-o", str(partial), "-lpthread"], timeout=120)
        except ToolFailed as exc:  # nothing is left in the cache: the next try compiles again
            raise PluginError(f"the instruction clock's plugin did not compile against {include / HEADER}: "
                              f"{exc.stderr.strip().splitlines()[-1:] or exc}") from None
        target.parent.mkdir(exist_ok=True)
        os.replace(partial, target)
    return target
