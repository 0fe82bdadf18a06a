"""What goes into an appliance: the initramfs and, with a root disk, the disk's tree.

Pure: it turns a Template, the built programs and the prepared module files into cpio
entries. Without a root disk everything is in the initramfs. With one, the initramfs
keeps only the init, its config and the modules needed to reach the disk; programs,
files and mount points go on the disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.build import cpio
from appliance.build.compress import compress
from appliance.build.modfiles import ModuleFile
from appliance.build.template import PROFILED_DEVICES, RootDisk, Template

CONSOLE = cpio.device("dev/console", "c", 5, 1, 0o600)
ROOT_DEVICE = {RootDisk.VIRTIO_BLK: "/dev/vda", RootDisk.PMEM: "/dev/pmem0"}


@dataclass(frozen=True)
class Contents:
    initrd: list[cpio.Entry]
    disk: list[cpio.Entry] | None  # None: no root disk


def module_dir(release: str) -> str:
    return f"lib/modules/{release}"


def init_conf(template: Template, modules: Sequence[ModuleFile] = (), release: str = "") -> str:
    """The init's configuration file (format documented in recipes/programs/init.c)."""
    lines = [f"module /{module_dir(release)}/{m.path} {m.name}" for m in modules]
    if modules:
        lines.append(f"modules_on_error {template.modules_on_error}")
    if template.root is not RootDisk.NONE:
        dax = " dax" if template.root is RootDisk.PMEM else ""
        lines.append(f"root {ROOT_DEVICE[template.root]} ext4{dax}")
    lines += [f"mount {m.value} {m.target}" for m in template.mounts]
    if template.profiled:
        lines.append(f"profiled {PROFILED_DEVICES[template.profiled]} {template.profiled_sample_ms}")
    if template.payload:
        lines.append("payload " + " ".join(template.payload))
    lines.append(f"after {template.after.value}")
    return "\n".join(lines) + "\n"


def _userland(template: Template, programs: dict[str, bytes]) -> list[cpio.Entry]:
    out = [cpio.directory(m.target.lstrip("/")) for m in template.mounts if m.target != "/dev"]
    out += [cpio.file(f"bin/{name}", programs[name], 0o755) for name in template.programs]
    folder = Path(template.folder)
    out += [cpio.file(f.dst, (folder / f.src).read_bytes(), f.mode) for f in template.files]
    return out


def contents(template: Template, init: bytes, programs: dict[str, bytes], modules: Sequence[ModuleFile] = (),
             release: str = "") -> Contents:
    boot = [
        cpio.file("init", init, 0o755),
        CONSOLE,
        cpio.file("etc/appliance/init.conf", init_conf(template, modules, release).encode()),
    ]
    boot += [cpio.file(f"{module_dir(release)}/{m.path}", m.data) for m in modules]
    if template.root is RootDisk.NONE:
        return Contents(boot + _userland(template, programs), None)
    return Contents(boot + [cpio.directory("newroot")], [cpio.directory("dev"), *_userland(template, programs)])


def build(template: Template, init: bytes, programs: dict[str, bytes], source_date_epoch: int,
          modules: Sequence[ModuleFile] = (), release: str = "") -> tuple[bytes, int, list[cpio.Entry] | None]:
    """The compressed initramfs, its uncompressed size, and the disk tree (or None)."""
    parts = contents(template, init, programs, modules, release)
    archive = cpio.write(parts.initrd, source_date_epoch)
    return compress(archive, template.compression), len(archive), parts.disk
