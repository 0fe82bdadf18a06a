"""qboot, built from source with BENCHMARK_HACK: source acquisition and checks.

The source is QBOOT_SRC (a qboot tree) or, by default, roms/qboot from Debian's qemu
source package, downloaded with `apt-get source --download-only`, checked against
firmware/qboot.lock and extracted into the cache. The recipe in firmware/SConscript
compiles it with qboot's own flags (from its meson.build) plus -DBENCHMARK_HACK=1.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appliance import proc
from appliance.errors import ApplianceError, ToolFailed
from appliance.fsutil import sha256_file
from appliance.paths import ROOT

QBOOT_LOCK = ROOT / "firmware" / "qboot.lock"

BIOS_SIZE = 64 * 1024
SOURCES = ("code16.c", "code32seg.c", "cstart.S", "entry.S", "fw_cfg.c", "hwsetup.c", "linuxboot.c", "main.c",
           "malloc.c", "mptable.c", "pci.c", "printf.c", "string.c", "smbios.c", "tables.c")
# qboot's meson.build c_args, plus what meson's default (debug) buildtype adds, as
# Debian's `meson setup roms/qboot` build does; BENCHMARK_HACK turns the probes on.
CFLAGS = ("-m32", "-march=i386", "-mregparm=3", "-fno-stack-protector", "-fno-delete-null-pointer-checks",
          "-ffreestanding", "-mstringop-strategy=rep_byte", "-minline-all-stringops", "-fno-pic",
          "-O0", "-g", "-DBENCHMARK_HACK=1")
# The last two only quiet ld about ELF headers that objcopy -O binary drops anyway.
LDFLAGS = ("-nostdlib", "-m32", "-Wl,--build-id=none", "-no-pie", "-Wl,-z,noexecstack", "-Wl,--no-warn-rwx-segments")


class FirmwareError(ApplianceError):
    """qboot could not be obtained or built."""


@dataclass(frozen=True)
class QbootLock:
    package: str
    version: str
    orig: str
    orig_sha256: str
    subdir: str


def read_lock(path: Path) -> QbootLock:
    raw = tomllib.loads(path.read_text())
    return QbootLock(raw["package"], raw["version"], raw["orig"], raw["orig_sha256"], raw["subdir"])


def check_tree(tree: Path) -> Path:
    missing = [name for name in (*SOURCES, "flat.lds", "benchmark.h") if not (tree / name).is_file()]
    if missing:
        raise FirmwareError(f"{tree} is not a qboot source tree (missing {', '.join(missing[:3])}): "
                            "point QBOOT_SRC at qemu's roms/qboot")
    return tree


def fetch_debian(lock: QbootLock, cache: Path, name: str = "qboot", marker: str = "main.c") -> Path:
    """LOCK's subdir of the pinned qemu source package (roms/qboot; the plugin header's
    folder for the instruction clock), extracted once into CACHE/NAME (whole once MARKER
    is there)."""
    target = cache / name / lock.orig_sha256[:16]
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        work = Path(tmp)
        try:
            proc.run(["apt-get", "source", "--download-only", f"{lock.package}={lock.version}"], cwd=work, timeout=900)
        except ToolFailed as exc:
            raise FirmwareError(f"apt-get could not download the {lock.package} source package "
                                f"({exc.stderr.strip().splitlines()[-1:]}): ./setup adds the deb-src entry it needs; "
                                "or set QBOOT_SRC=/path/to/roms/qboot") from None
        orig = work / lock.orig
        digest = sha256_file(orig) if orig.is_file() else "missing"
        if digest != lock.orig_sha256:
            raise FirmwareError(f"{lock.orig} has sha256 {digest}, firmware/qboot.lock pins {lock.orig_sha256}: "
                                "upstream changed; check it and update the lock")
        with tarfile.open(orig) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(lock.subdir + "/") and m.isfile()]
            if not members:
                raise FirmwareError(f"{lock.orig} has no {lock.subdir}: set QBOOT_SRC instead")
            archive.extractall(work / "x", members=members, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(work / "x" / lock.subdir, target)
    return target


def source_tree(qboot_src: str, cache: Path) -> Path:
    """The qboot source tree a build uses: QBOOT_SRC, or the locked one from Debian's qemu
    source package (fetched into CACHE once); checked, with gcc's -m32 support."""
    check_m32()
    if qboot_src:
        return check_tree(Path(qboot_src))
    return check_tree(fetch_debian(read_lock(QBOOT_LOCK), cache))


def check_m32() -> None:
    """gcc must compile 32-bit freestanding code (no 32-bit libc needed)."""
    with tempfile.TemporaryDirectory(prefix="appliance-m32-") as tmp:
        source = Path(tmp) / "t.c"
        source.write_text("int f(int x) { return x + 1; }\n")
        try:
            proc.run(["gcc", "-m32", "-ffreestanding", "-c", str(source), "-o", str(Path(tmp) / "t.o")])
        except ToolFailed:
            raise FirmwareError("gcc cannot compile -m32 code: install gcc-multilib (or a gcc with x86 32-bit "
                                "support)") from None


def check_bios(path: Path) -> None:
    size = path.stat().st_size
    if size != BIOS_SIZE:
        raise FirmwareError(f"{path} is {size} bytes; qboot must be exactly {BIOS_SIZE} (64 KiB)")
