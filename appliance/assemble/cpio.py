"""An in-process newc ("070701") cpio writer and reader.

Records are built from small constructors (directory, regular file, symlink, device
node), so an initramfs with /dev/console can be made without root. Output is
deterministic: entries sorted by path with every parent before its children, inode
numbers assigned in that order, uid/gid 0 and mtimes clamped to SOURCE_DATE_EPOCH, so
the same inputs always give the same bytes.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from appliance.assemble import compress

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_FIELDS = 13  # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
_HEADER_LEN = 6 + 8 * _FIELDS


class CpioError(ValueError):
    """A malformed archive or an invalid record."""


@dataclass(frozen=True)
class Entry:
    """One archive member. `path` is relative ("dev/console"), never absolute."""

    path: str
    mode: int  # full st_mode: file type bits | permission bits
    data: bytes = b""  # file contents, or the target of a symlink
    rdev_major: int = 0
    rdev_minor: int = 0
    mtime: int = 0

    @property
    def kind(self) -> str:
        return {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink",
                stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}.get(stat.S_IFMT(self.mode), "other")


def _clean(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
        raise CpioError(f"archive path must be relative without '..': {path!r}")
    return str(pure)


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(_clean(path), stat.S_IFDIR | perm)


def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(_clean(path), stat.S_IFREG | perm, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(_clean(path), stat.S_IFLNK | 0o777, target.encode())


def device(path: str, kind: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    """A device node: kind "c" (character) or "b" (block)."""
    types = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}
    if kind not in types:
        raise CpioError(f"device kind must be 'c' or 'b', not {kind!r}")
    return Entry(_clean(path), types[kind] | perm, b"", major, minor)


def _sort_key(entry: Entry) -> tuple[str, ...]:
    return PurePosixPath(entry.path).parts


def _with_parents(entries: list[Entry]) -> list[Entry]:
    """Add a 0755 directory for every parent that the caller did not list."""
    by_path = {e.path: e for e in entries}
    if len(by_path) != len(entries):
        dupes = sorted({e.path for e in entries if sum(x.path == e.path for x in entries) > 1})
        raise CpioError(f"duplicate archive paths: {', '.join(dupes)}")
    for entry in entries:
        for parent in PurePosixPath(entry.path).parents:
            name = str(parent)
            if name == ".":
                continue
            if name not in by_path:
                by_path[name] = directory(name)
            elif by_path[name].kind != "dir":
                raise CpioError(f"{name} is both a {by_path[name].kind} and a directory")
    return sorted(by_path.values(), key=_sort_key)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _record(ino: int, entry: Entry, name: str) -> bytes:
    encoded = name.encode() + b"\0"
    nlink = 2 if entry.kind == "dir" else 1
    fields = (ino, entry.mode, 0, 0, nlink, entry.mtime, len(entry.data), 0, 0,
              entry.rdev_major, entry.rdev_minor, len(encoded), 0)
    header = MAGIC + b"".join(b"%08X" % f for f in fields)
    head = header + encoded
    return head + _pad(len(head)) + entry.data + _pad(len(entry.data))


def write(entries: list[Entry], source_date_epoch: int = 0, as_given: bool = False) -> bytes:
    """Serialize entries (plus missing parents and the trailer) to newc bytes; AS_GIVEN:
    the entries alone, in their order (a cache of a list, not an archive to unpack)."""
    ordered = entries if as_given else _with_parents(entries)
    chunks = []
    for ino, entry in enumerate(ordered, start=1):
        clamped = replace(entry, mtime=min(entry.mtime, source_date_epoch))
        chunks.append(_record(ino, clamped, entry.path))
    chunks.append(_record(0, Entry(TRAILER, 0), TRAILER))
    return b"".join(chunks)


def read(blob: bytes) -> list[Entry]:
    """Parse newc bytes back into entries (without the trailer). Strict: raises CpioError.
    Concatenated archives (an initramfs of pieces) read as the kernel unpacks them: one
    after another, zero padding between them skipped, a path met again replacing the
    earlier entry (each piece repeats the directories above its files)."""
    entries: dict[str, Entry] = {}
    pos = _read_archive(blob, 0, entries)
    while pos < len(blob):
        while pos < len(blob) and blob[pos] == 0:
            pos += 1
        if pos < len(blob):
            pos = _read_archive(blob, pos, entries)
    return list(entries.values())


def expand_initrd(blob: bytes) -> bytes:
    """An initrd's archives expanded, as the kernel unpacks them one after another: plain
    newc archives as they are, compressed ones (zstd frames, gzip members) expanded, zero
    padding between them skipped. Ours is zstd pieces; a distribution's initrd (early
    microcode, then gzip or zstd) with ours appended ([image] initrd = "image") reads whole."""
    out: list[bytes] = []
    pos, total = 0, 0
    view = memoryview(blob)
    while pos < len(blob):
        if blob[pos] == 0:
            pos += 1
        elif blob.startswith(MAGIC, pos):
            end = _read_archive(blob, pos, {})
            out.append(blob[pos:end])
            pos = end
        else:
            expanded, used = compress.expand_one(view[pos:], compress.MAX_EXPANDED - total)
            out.append(expanded)
            total += len(expanded)
            pos += used
    return b"".join(out)


def read_initrd(blob: bytes) -> list[Entry]:
    """The files of an initrd (expand_initrd), as the kernel leaves them."""
    return read(expand_initrd(blob))


def _read_archive(blob: bytes, pos: int, entries: dict[str, Entry]) -> int:
    """Read one archive from POS into ENTRIES; the offset just past its trailer."""
    while True:
        if blob[pos:pos + 6] != MAGIC:
            raise CpioError(f"bad magic at offset {pos}: {blob[pos:pos + 6]!r}")
        if pos + _HEADER_LEN > len(blob):
            raise CpioError(f"truncated header at offset {pos}")
        try:
            fields = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(_FIELDS)]
        except ValueError as exc:
            raise CpioError(f"non-hex header field at offset {pos}") from exc
        mode, mtime, size, namesize = fields[1], fields[5], fields[6], fields[11]
        name_start = pos + _HEADER_LEN
        name_end = name_start + namesize
        data_start = name_end + (-(_HEADER_LEN + namesize) % 4)
        data_end = data_start + size
        if namesize == 0 or data_end > len(blob):
            raise CpioError(f"truncated record at offset {pos}")
        name = blob[name_start:name_end - 1].decode()
        pos = data_end + (-size % 4)
        if name == TRAILER:
            return pos
        entries[name] = Entry(name, mode, blob[data_start:data_end], fields[9], fields[10], mtime)
