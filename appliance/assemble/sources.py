"""Files from outside the project: host programs (with their ELF closure), host file
globs, and unpacked Debian packages, each as layout.Placed entries with its source.

The edge of the [packages] table: it reads the host's files and runs dpkg-deb; what to
do with the entries is layout's and initramfs' business.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tarfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import proc
from appliance.assemble import cpio, elfclosure, licenses
from appliance.assemble.apt import PackageError, Pin, control
from appliance.assemble.layout import Placed
from appliance.errors import ToolFailed
from appliance.fsutil import atomic_write

# Left out of packages unless a template says otherwise: documentation, manuals and
# translations are most of a small package's bytes and nothing a boot reads.
DEFAULT_EXCLUDE = ("usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
                   "usr/share/lintian/*", "usr/share/bug/*", "usr/share/doc-base/*")


def excluded(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


SPECIAL = ("/proc", "/sys", "/dev", "/run")  # the host's live state: never an image's content


def find_program(name: str, where: str) -> str:
    """A [packages] host entry as an absolute path: a path as is, a bare name on PATH;
    it must be an ELF program (scripts and data go in host_files)."""
    path = name if "/" in name else shutil.which(name)
    if not path or not os.path.isfile(path):
        raise elfclosure.ClosureError(f"{where}: host program {name!r} not found" + ("" if "/" in name else " on PATH"))
    path = os.path.abspath(path)
    check_host_file(path, where)
    with open(path, "rb") as program:
        if program.read(4) != b"\x7fELF":
            raise elfclosure.ClosureError(f"{where}: host program {path} is not an ELF program: list scripts and data "
                                          "in host_files instead")
    return path


def check_host_file(path: str, where: str) -> None:
    """Refuse what must not go into an image: anything under the host's live filesystems
    (/proc, /sys, /dev, /run: secrets, endless or blocking files), and anything that is
    not a regular file, directory or symlink (a FIFO blocks, /dev/zero never ends); warn
    on a file only root could read (a secret the image would then hand to anyone)."""
    real = os.path.realpath(path)
    for top in SPECIAL:
        if real == top or real.startswith(top + "/"):
            raise elfclosure.ClosureError(f"{where}: {path} is under {top}, the host's live state, not a file to "
                                          "copy into an image: copy what you need into the template's folder")
    info = os.lstat(path)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise elfclosure.ClosureError(f"{where}: {path} is a {_kind(info.st_mode)}: only regular files, directories "
                                      "and symlinks go into an image")
    if stat.S_ISREG(info.st_mode) and not info.st_mode & stat.S_IROTH and info.st_uid == 0:
        print(f"warning: {where}: {path} is readable only by root (mode {stat.S_IMODE(info.st_mode):04o}): the image "
              "gives it to anyone who has the image", file=sys.stderr)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _host_entry(node: elfclosure.Node) -> cpio.Entry:
    path = node.path.lstrip("/")
    if node.link:
        return cpio.symlink(path, node.link)
    info = os.stat(node.path)
    return cpio.file(path, Path(node.path).read_bytes(), stat.S_IMODE(info.st_mode))


def _glob(pattern: str, where: str) -> list[str]:
    """Regular files and symlinks matching PATTERN (** recurses; a directory brings its tree)."""
    if not pattern.startswith("/"):
        raise elfclosure.ClosureError(f"{where}: host_files pattern {pattern!r} must be an absolute host path")
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise elfclosure.ClosureError(f"{where}: host_files pattern {pattern!r} matches nothing on this host")
    out: list[str] = []
    for match in matches:
        check_host_file(match, where)
        if os.path.isdir(match) and not os.path.islink(match):
            for folder, dirs, files in os.walk(match):
                dirs.sort()
                out += [os.path.join(folder, f) for f in sorted(files)]
                out += [os.path.join(folder, d) for d in dirs if os.path.islink(os.path.join(folder, d))]
        else:
            out.append(match)
    for found in out:
        check_host_file(found, where)
    return out


def host(programs: Sequence[str], patterns: Sequence[str], where: str) -> list[Placed]:
    """Host PROGRAMS with their closure, and the files of host PATTERNS (their ELF
    files with their closures too: a Python extension module needs its libraries)."""
    resolver = elfclosure.Resolver()
    placed: list[Placed] = []
    try:
        for name in programs:
            program = find_program(name, where)
            placed += [Placed(_host_entry(n), f"host {program}") for n in elfclosure.closure([program], resolver)]
        for pattern in patterns:
            files = _glob(pattern, where)
            placed += [Placed(_host_entry(n), f"host_files {pattern}") for n in elfclosure.closure(files, resolver)]
    except elfclosure.ClosureError as exc:
        if str(exc).startswith(where):
            raise
        raise elfclosure.ClosureError(f"{where}: {exc}") from None
    return placed


@dataclass(frozen=True)
class Unpacked:
    """A package's entries, and what the entries may not keep: its license (for the
    SBOM), read from its copyright file before the docs are excluded, and the control
    fields that say what it needs and provides (the lock's check)."""

    placed: list[Placed]
    license: str
    copyright_found: bool
    control: dict[str, str]


def unpack_deb(deb: Path, pin: Pin, exclude: Sequence[str]) -> Unpacked:
    """The files, links and directories of a .deb (read with dpkg-deb), minus EXCLUDE.
    Hard links become copies; device nodes are left to devtmpfs."""
    source = f"debian {pin.name}={pin.version}"
    copyright_path = f"usr/share/doc/{pin.name}/copyright"
    copyright_text: str | None = None
    try:
        data = proc.run_bytes(["dpkg-deb", "--fsys-tarfile", str(deb)], timeout=300)
    except ToolFailed as exc:
        raise PackageError(f"{deb.name} is not a readable package ({exc}): delete it from the cache") from None
    placed: list[Placed] = []
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            path = os.path.normpath(member.name).lstrip("./").lstrip("/")
            if path == copyright_path and member.isfile():
                stream = tar.extractfile(member)
                copyright_text = stream.read().decode("utf-8", "replace") if stream else None
            if not path or path == "." or excluded(path, exclude):
                continue
            perm = stat.S_IMODE(member.mode)
            if member.isdir():
                placed.append(Placed(cpio.directory(path, perm), source))
            elif member.issym():
                placed.append(Placed(cpio.symlink(path, member.linkname), source))
            elif member.islnk():
                target = os.path.normpath(member.linkname).lstrip("./").lstrip("/")
                if target in contents:
                    placed.append(Placed(cpio.file(path, contents[target], perm), source))
            elif member.isfile():
                stream = tar.extractfile(member)
                body = stream.read() if stream else b""
                contents[path] = body
                placed.append(Placed(cpio.file(path, body, perm), source))
    return Unpacked(placed, licenses.from_copyright(copyright_text), copyright_text is not None, control(deb))


# A cached unpacked package is a newc archive of its entries with this file first (its
# facts as JSON); the name cannot come from a package, whose paths never start with ".".
_FACTS = ".appliance-unpacked"
UNPACKED_FORMAT = "1"  # change when unpack_deb's output changes: old cached trees are then not used


def unpacked_path(cache: Path, pin: Pin, exclude: Sequence[str]) -> Path:
    """Where PIN's tree, minus EXCLUDE, is kept: named by the .deb's digest and the
    exclude list, so a changed list or package is a different entry."""
    key = hashlib.sha256("\0".join((UNPACKED_FORMAT, pin.sha256, *exclude)).encode()).hexdigest()
    return cache / f"deb-{key[:32]}.cpio"


def unpack_cached(deb: Path, pin: Pin, exclude: Sequence[str], cache: Path | None) -> tuple[Unpacked, bool]:
    """unpack_deb's answer, from CACHE when it holds it (then True); kept there when
    not. dpkg-deb's decompression is most of a warm build's time without it. A damaged
    cached tree is unpacked again."""
    path = unpacked_path(cache, pin, exclude) if cache is not None else None
    if path is not None and path.is_file():
        try:
            entries = cpio.read(path.read_bytes())
            if entries and entries[0].path == _FACTS:
                facts = json.loads(entries[0].data)
                source = f"debian {pin.name}={pin.version}"
                return Unpacked([Placed(e, source) for e in entries[1:]], facts["license"],
                                facts["copyright_found"], facts["control"]), True
        except (cpio.CpioError, ValueError, KeyError):
            pass
    part = unpack_deb(deb, pin, exclude)
    if path is not None:
        facts = {"license": part.license, "copyright_found": part.copyright_found, "control": part.control}
        head = cpio.file(_FACTS, json.dumps(facts, sort_keys=True).encode())
        atomic_write(path, cpio.write([head, *(p.entry for p in part.placed)], 1 << 31, as_given=True))
    return part, False


def packages(debs: Iterable[tuple[Pin, Path]], exclude: Sequence[str],
             cache: Path | None = None) -> tuple[list[Unpacked], list[dict[str, Any]]]:
    """Every package unpacked (or taken from CACHE), in the given order, and each
    package's facts for the bundle (name, version, architecture, the .deb's sha256,
    license). dpkg-deb runs on every core at once (its decompression is most of the
    time; threads suffice)."""
    items = list(debs)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        unpacked = [part for part, _ in pool.map(lambda item: unpack_cached(item[1], item[0], exclude, cache), items)]
    facts = [{"name": pin.name, "version": pin.version, "arch": pin.arch, "sha256": pin.sha256,
              "license": part.license, "copyright_file": part.copyright_found}
             for (pin, _), part in zip(items, unpacked, strict=True)]
    return unpacked, facts
