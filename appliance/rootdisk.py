"""Root disk images: ext4 made by `mke2fs -d` from a directory tree, no root or loop mount.

Deterministic for the same tree: the UUID and the directory hash seed are derived from
the content, and E2FSPROGS_FAKE_TIME pins every timestamp to SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import uuid
from pathlib import Path

from . import cpio, proc


def stage(entries: list[cpio.Entry], root: Path, epoch: int) -> None:
    """Write ENTRIES under ROOT (device nodes are left to devtmpfs)."""
    for entry in sorted(entries, key=lambda e: e.path):
        target = root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
        elif entry.kind == "file":
            target.write_bytes(entry.data)
        elif entry.kind == "symlink":
            target.symlink_to(entry.data.decode())
        else:
            continue
        if entry.kind != "symlink":
            os.chmod(target, stat.S_IMODE(entry.mode))
            os.utime(target, (epoch, epoch))


def make_ext4(entries: list[cpio.Entry], size_mib: int, out: Path, epoch: int) -> None:
    digest = hashlib.sha256(cpio.write(entries, epoch)).digest()
    fs_uuid = str(uuid.UUID(bytes=digest[:16]))
    with tempfile.TemporaryDirectory(prefix="appliance-rootfs-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        stage(entries, tree, epoch)
        image = Path(tmp) / "rootfs.img"
        env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(epoch), "MKE2FS_DEVICE_SECTSIZE": "512"}
        proc.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "root", "-U", fs_uuid,
                  "-E", f"hash_seed={fs_uuid},root_owner=0:0", "-d", str(tree), str(image), f"{size_mib}M"],
                 env=env, timeout=300)
        os.replace(image, out)
