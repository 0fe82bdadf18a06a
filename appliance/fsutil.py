"""Small file helpers: atomic writes, digests, and following a growing log."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


class Growing:
    """A file another process appends to (QEMU's console or trace log), read a piece at
    a time: each read() returns what was added since the last one (nothing while the
    file does not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                chunk = log.read()
        except FileNotFoundError:
            return b""
        self.offset += len(chunk)
        return chunk


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write DATA to PATH so readers see the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def stamp(path: str | Path | None) -> str:
    """PATH=SIZE:MTIME_NS, or PATH=missing: what changes when a file is replaced (a tool
    upgraded, a host program updated), read without opening it."""
    try:
        info = os.stat(path) if path else None
    except OSError:
        info = None
    return f"{path}={info.st_size}:{info.st_mtime_ns}" if info else f"{path}=missing"


def copy_sparse(src: Path, dst: Path) -> None:
    """Copy SRC to DST keeping its holes (an ext4 image is mostly holes: copying its
    zeros cost a warm build 0.2 s and the cache 60 MB)."""
    size = src.stat().st_size
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fd, offset = fin.fileno(), 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # no data after OFFSET: the rest is a hole
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            while start < end:
                chunk = fin.read(min(end - start, 1 << 20))
                if not chunk:  # SRC shrank under us: what is left is a hole
                    break
                fout.write(chunk)
                start += len(chunk)
            offset = end
        fout.truncate(size)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside PATH for a tool to write; renamed onto PATH if the block
    succeeds, removed if it fails, so PATH is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SEAL = ".appliance-digests.json"


def seal(root: Path) -> None:
    """Record the sha256 of every regular file under ROOT in ROOT/SEAL: a cached tree
    (an unpacked kernel package, a built image) can then prove later that a file it
    hands out is still the file that was unpacked, not one truncated or edited since."""
    digests = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
               if p.is_file() and not p.is_symlink() and p.name != SEAL}
    (root / SEAL).write_text(json.dumps(digests, indent=0, sort_keys=True) + "\n")


def sealed(root: Path) -> bool:
    return (root / SEAL).is_file()


def unsealed_change(root: Path, path: Path) -> str | None:
    """Why PATH (a file under the sealed ROOT) is not as it was sealed, or None."""
    try:
        digests = json.loads((root / SEAL).read_text())
    except (OSError, ValueError):
        return f"{root} has no readable record of its files' digests"
    key = str(path.relative_to(root))
    if key not in digests:
        return f"{key} was not in {root} when it was unpacked"
    if not path.is_file():
        return f"{key} is missing"
    if sha256_file(path) != digests[key]:
        return f"{key} does not match the digest recorded when it was unpacked (truncated or edited?)"
    return None


class Busy(Exception):
    """A lock another process holds, when the caller would rather not wait."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


@contextlib.contextmanager
def locked(path: Path, what: str, shared: bool = False, wait: bool = True) -> Iterator[None]:
    """Hold an advisory lock on PATH (created if need be) for the block, like apt's and
    dpkg's: a shared one (several readers), or an exclusive one that records our PID. If
    another process holds it, say once on stderr that we wait for it (WHAT: what it is
    doing), or raise Busy naming the holder when not WAIT. The kernel drops the lock when
    the holder dies, so a killed build never leaves one behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise Busy(f"{what}{holder}") from None
            print(f"waiting: {what}{holder}", file=sys.stderr, flush=True)
            fcntl.flock(fd, mode)
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def hold(path: Path, what: str, shared: bool = False) -> None:
    """Take the lock of `locked` for the rest of this process (an SCons build's)."""
    manager = locked(path, what, shared)
    manager.__enter__()
    _HELD.append(manager)


_HELD: list[contextlib.AbstractContextManager[None]] = []


def os_error_line(exc: OSError, target: Path | None = None, *, doing: str = "",
                  advice: str = "free space there (or set TMPDIR for temporary files)") -> str:
    """One line for a file error while DOING something (to TARGET), naming the file it
    hit. A full disk names the disk that is full, which need not hold the file the error
    names (a build reads the cache and writes the build folder: they may be two disks),
    and says ADVICE."""
    where = Path(exc.filename) if exc.filename else target
    if exc.errno == errno.ENOSPC:
        full = next((p for p in (where, target) if p is not None and nearly_full(p)), target or where)
        disk = f" holding {full}" if full is not None else ""
        return f"no space left on the disk{disk}{f' ({doing})' if doing else ''}: {advice}"
    lead = f"{doing}: " if doing else ""
    return f"{lead}{exc.strerror or exc}{f' ({where})' if where is not None else ''}"


def nearly_full(path: Path) -> bool:
    """Whether the disk holding PATH (or its nearest existing folder) has under 1 MiB free."""
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free < 1 << 20
    return False
