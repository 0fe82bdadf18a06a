"""Root disk images from a directory tree, no root or loop mount: ext4 made by
`mke2fs -d`, or EROFS (read-only, compact) made by `mkfs.erofs` from Debian's erofs-utils.

Deterministic for the same tree: the UUID (and ext4's directory hash seed) are derived
from the content, every timestamp is SOURCE_DATE_EPOCH (E2FSPROGS_FAKE_TIME; erofs's
-T), every file is root's, and the staged tree is written in path order.

For a vNVDIMM root the image is an "fsdax" namespace: QEMU's label-less NVDIMM is a raw
namespace, on which Linux refuses DAX. A PFN info block 4 KiB into the namespace (what
`ndctl create-namespace -m fsdax` would write in the guest) turns it into an fsdax
device whose data, the ext4 filesystem, starts at PFN_DATA_OFFSET.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import struct
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from appliance import proc
from appliance.assemble import cpio
from appliance.fsutil import atomic_path, copy_sparse, stamp


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


PFN_INFO_OFFSET = 4096
PFN_DATA_OFFSET = 2 << 20  # the 2 MiB alignment Linux wants for fsdax mappings
PFN_MODE_RAM = 1  # struct pages for the device live in RAM, not on the device


def fletcher64(block: bytes) -> int:
    """The checksum of NVDIMM info blocks (little-endian 32-bit words)."""
    low = high = 0
    for (word,) in struct.iter_unpack("<I", block):
        low = (low + word) & 0xFFFFFFFF
        high = (high + low) & 0xFFFFFFFFFFFFFFFF
    return ((high << 32) | low) & 0xFFFFFFFFFFFFFFFF


def pfn_info_block(total_bytes: int, fs_uuid: bytes) -> bytes:
    """An `nd_pfn_sb` (version 1.4) for a raw namespace of TOTAL_BYTES."""
    npfns = (total_bytes - PFN_DATA_OFFSET) // 4096
    head = struct.pack("<16s16s16sIHHQQIIIIIH", b"NVDIMM_PFN_INFO\0", fs_uuid, bytes(16), 0, 1, 4,
                       PFN_DATA_OFFSET, npfns, PFN_MODE_RAM, 0, 0, PFN_DATA_OFFSET, 4096, 64)
    block = head + bytes(4096 - 8 - len(head))
    return block + struct.pack("<Q", fletcher64(block + bytes(8)))


def make_pmem(entries: list[cpio.Entry], size_mib: int, out: Path, epoch: int, erofs: bool = False) -> None:
    """An fsdax namespace image: PFN info block, then the filesystem (ext4 of SIZE_MIB in
    all, or EROFS as large as it needs, the namespace rounded up to 2 MiB) at
    PFN_DATA_OFFSET."""
    scratch = out.with_name(f".{out.name}.fs")  # the bare filesystem, copied in after the header
    try:
        if erofs:
            make_erofs(entries, scratch, epoch)
            total = PFN_DATA_OFFSET + -(-scratch.stat().st_size // PFN_DATA_OFFSET) * PFN_DATA_OFFSET
        else:
            total = size_mib << 20
            make_ext4(entries, (total - PFN_DATA_OFFSET) >> 20, scratch, epoch)
        with atomic_path(out) as tmp, open(tmp, "wb") as dst, open(scratch, "rb") as src:
            dst.write(bytes(PFN_INFO_OFFSET))
            dst.write(pfn_info_block(total, hashlib.sha256(src.read(1 << 20)).digest()[:16]))
            src.seek(0)
            dst.seek(PFN_DATA_OFFSET)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.truncate(total)  # the namespace's whole size: QEMU maps the file as the NVDIMM
    finally:
        scratch.unlink(missing_ok=True)


@contextlib.contextmanager
def _staged(entries: list[cpio.Entry], epoch: int) -> Iterator[tuple[Path, str]]:
    """ENTRIES written into a temporary tree (its root's time too), and the filesystem
    UUID their content gives: what both image makers start from."""
    digest = hashlib.sha256(cpio.write(entries, epoch)).digest()
    with tempfile.TemporaryDirectory(prefix="appliance-rootfs-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        stage(entries, tree, epoch)
        os.utime(tree, (epoch, epoch))
        yield tree, str(uuid.UUID(bytes=digest[:16]))


def make_ext4(entries: list[cpio.Entry], size_mib: int, out: Path, epoch: int) -> None:
    with _staged(entries, epoch) as (tree, fs_uuid), atomic_path(out) as image:
        env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(epoch), "MKE2FS_DEVICE_SECTSIZE": "512"}
        proc.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "root", "-U", fs_uuid,
                  "-E", f"hash_seed={fs_uuid},root_owner=0:0", "-d", str(tree), str(image), f"{size_mib}M"],
                 env=env, timeout=300)


def make_erofs(entries: list[cpio.Entry], out: Path, epoch: int) -> None:
    """A read-only EROFS image of ENTRIES, uncompressed (DAX maps only uncompressed
    files, and the kernel then reads pages straight from the device)."""
    with _staged(entries, epoch) as (tree, fs_uuid), atomic_path(out) as image:
        proc.run(["mkfs.erofs", f"-T{epoch}", f"-U{fs_uuid}", "--all-root", "-Enoinline_data", str(image), str(tree)],
                 timeout=300)


IMAGE_FORMAT = "1"  # change when an image maker's output changes: cached images are then not used


def make_root(entries: list[cpio.Entry], out: Path, epoch: int, *, erofs: bool, pmem: bool, size_mib: int,
              cache: Path | None = None) -> bool:
    """The root disk image of ENTRIES (EROFS or ext4, on pmem or not), taken from CACHE
    when one was made before of the same tree with the same settings and tools (then
    True), kept there when made now. The bytes are the same either way: the makers are
    deterministic and the key is the content."""
    tool = "mkfs.erofs" if erofs else "mke2fs"
    digest = hashlib.sha256(f"{IMAGE_FORMAT} erofs={erofs} pmem={pmem} size={size_mib} epoch={epoch} "
                            f"{stamp(shutil.which(tool))}".encode())
    for entry in sorted(entries, key=lambda e: e.path):  # what the image holds, without writing an archive of it
        digest.update(f"\0{entry.path}\0{entry.mode:o}\0{entry.rdev_major}:{entry.rdev_minor}\0{len(entry.data)}\0"
                      .encode())
        digest.update(entry.data)
    kept = cache / f"rootfs-{digest.hexdigest()[:32]}.img" if cache is not None else None
    if kept is not None and kept.is_file():
        with atomic_path(out) as tmp:
            copy_sparse(kept, tmp)
        return True
    if pmem:
        make_pmem(entries, size_mib, out, epoch, erofs=erofs)
    elif erofs:
        make_erofs(entries, out, epoch)
    else:
        make_ext4(entries, size_mib, out, epoch)
    if kept is not None:
        with atomic_path(kept) as tmp:
            copy_sparse(out, tmp)
    return False
