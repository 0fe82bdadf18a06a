"""What goes into an appliance's initramfs: the init, its config, programs, files.

Pure: it turns a Template and the bytes of the built programs into cpio entries.
"""

from __future__ import annotations

from pathlib import Path

from . import cpio
from .compress import compress
from .config import Template

CONSOLE = cpio.device("dev/console", "c", 5, 1, 0o600)


def init_conf(template: Template) -> str:
    """The init's configuration file (format documented in recipes/programs/init.c)."""
    lines = [f"mount {m.value} {m.target}" for m in template.mounts]
    if template.payload:
        lines.append("payload " + " ".join(template.payload))
    lines.append(f"after {template.after.value}")
    return "\n".join(lines) + "\n"


def entries(template: Template, init: bytes, programs: dict[str, bytes]) -> list[cpio.Entry]:
    """Every member of the initramfs; `programs` maps a program name to its binary."""
    out = [
        cpio.file("init", init, 0o755),
        CONSOLE,
        cpio.file("etc/appliance/init.conf", init_conf(template).encode()),
    ]
    out += [cpio.directory(m.target.lstrip("/")) for m in template.mounts if m.target != "/dev"]
    out += [cpio.file(f"bin/{name}", programs[name], 0o755) for name in template.programs]
    folder = Path(template.folder)
    out += [cpio.file(f.dst, (folder / f.src).read_bytes(), f.mode) for f in template.files]
    return out


def build(template: Template, init: bytes, programs: dict[str, bytes], source_date_epoch: int) -> tuple[bytes, int]:
    """The compressed initramfs and its uncompressed size."""
    archive = cpio.write(entries(template, init, programs), source_date_epoch)
    return compress(archive, template.compression), len(archive)
