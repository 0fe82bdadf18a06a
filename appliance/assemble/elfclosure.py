"""Host programs with everything the dynamic loader will load for them.

The closure is found the way ld.so finds it, from the ELF headers (read with
pyelftools, never from `ldd`, which runs the program): PT_INTERP, then DT_NEEDED
recursively, each name searched in the needing object's DT_RPATH (and its loaders', when
it has no DT_RUNPATH), its DT_RUNPATH, the loader cache /etc/ld.so.cache, and the
default directories, with $ORIGIN and $LIB expanded. A library of another ELF class or
machine is skipped, as the loader skips it.

Every path is returned with the symlinks on the way to it (a merged-/usr host has
/lib -> usr/lib, and libfoo.so.1 -> libfoo.so.1.2.3): they are recreated as symlinks
in the image, so the program sees the same names it sees on the host.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from appliance.errors import ApplianceError


class ClosureError(ApplianceError):
    """A program or one of its libraries cannot be found or read."""


# ld.so's built-in search path on Debian (multiarch first), per ELF machine
DEFAULT_DIRS = {
    "EM_X86_64": ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"),
    "EM_AARCH64": ("/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"),
}
MULTIARCH = {"EM_X86_64": "x86_64-linux-gnu", "EM_AARCH64": "aarch64-linux-gnu"}
LD_CACHE = Path("/etc/ld.so.cache")


@dataclass(frozen=True)
class ElfInfo:
    machine: str  # e_machine, e.g. "EM_X86_64"
    elfclass: int  # 32 or 64
    interp: str  # PT_INTERP, "" for a static program or a library
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]


@dataclass(frozen=True)
class Node:
    """One thing to put in the image: a regular file or a symlink (target as stored)."""

    path: str  # absolute host path, also its path in the image
    link: str = ""  # a symlink's target; "" for a regular file


def read_elf(path: Path) -> ElfInfo | None:
    """The loader-relevant facts of PATH, or None if it is not an ELF file."""
    # imported here: pyelftools is a fifth of the import time of every `scons`, and only
    # templates with host programs read ELF files
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as stream:
            if stream.read(4) != b"\x7fELF":
                return None
            stream.seek(0)
            elf = ELFFile(stream)
            interp = ""
            needed: list[str] = []
            rpath: list[str] = []
            runpath: list[str] = []
            for segment in elf.iter_segments():
                if segment["p_type"] == "PT_INTERP":
                    interp = segment.get_interp_name()  # type: ignore[attr-defined]
            for section in elf.iter_sections():
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    # pyelftools sets needed/rpath/runpath on the tag by its type
                    kind = tag.entry.d_tag
                    if kind == "DT_NEEDED":
                        needed.append(tag.needed)  # type: ignore[attr-defined]
                    elif kind == "DT_RPATH":
                        rpath += tag.rpath.split(":")  # type: ignore[attr-defined]
                    elif kind == "DT_RUNPATH":
                        runpath += tag.runpath.split(":")  # type: ignore[attr-defined]
            return ElfInfo(elf["e_machine"], elf.elfclass, interp, tuple(needed), tuple(rpath), tuple(runpath))
    except (ELFError, struct.error, ValueError) as exc:
        raise ClosureError(f"{path} is a damaged ELF file ({exc})") from None
    except OSError as exc:
        raise ClosureError(f"cannot read {path}: {exc.strerror}") from None


def read_ld_cache(path: Path = LD_CACHE) -> dict[str, list[str]]:
    """soname -> library paths from a glibc loader cache (the "glibc-ld.so.cache1.1"
    format, alone or after the old format's table), in the cache's order. An absent or
    unreadable cache is empty: the loader then uses its default directories too."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    magic = b"glibc-ld.so.cache1.1"
    start = data.find(magic)
    if start < 0:
        return {}
    nlibs, = struct.unpack_from("<I", data, start + 20)
    entries = start + 48  # magic (20), nlibs, len_strings, flags+pad, extension offset, 3 unused
    out: dict[str, list[str]] = {}
    for i in range(nlibs):
        _flags, key, value, _os, _hwcap = struct.unpack_from("<iIIIQ", data, entries + 24 * i)
        out.setdefault(_cstring(data, start + key), []).append(_cstring(data, start + value))
    return out


def _cstring(data: bytes, offset: int) -> str:
    return data[offset:data.index(b"\0", offset)].decode("utf-8", "replace")


def _expand(entry: str, origin: str, machine: str) -> str:
    lib = f"lib/{MULTIARCH.get(machine, '')}".rstrip("/")
    for token, value in (("$ORIGIN", origin), ("${ORIGIN}", origin), ("$LIB", lib), ("${LIB}", lib)):
        entry = entry.replace(token, value)
    return entry


def symlink_chain(path: str) -> tuple[list[Node], str]:
    """The symlinks met while resolving PATH component by component (directories and
    the file itself), and the real path at the end. Raises ClosureError if PATH does
    not exist."""
    links: list[Node] = []
    parts = list(PurePosixPath(path).parts[1:])
    current = "/"
    hops = 0
    while parts:
        name = parts.pop(0)
        candidate = os.path.join(current, name)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise ClosureError(f"{path}: too many levels of symlinks")
            target = os.readlink(candidate)
            links.append(Node(candidate, target))
            parts = list(PurePosixPath(target).parts) + parts
            if target.startswith("/"):
                parts, current = parts[1:], "/"
            continue
        if name == "..":
            current = os.path.dirname(current)
        elif name != ".":
            current = candidate
    if not os.path.exists(current):
        raise ClosureError(f"{path} does not exist")
    return links, os.path.normpath(current)


@dataclass
class _Found:
    nodes: dict[str, Node]

    def add(self, path: str) -> str:
        """Record PATH with its symlinks; return its real path."""
        links, real = symlink_chain(path)
        for link in links:
            self.nodes.setdefault(link.path, link)
        self.nodes.setdefault(real, Node(real))
        return real


class Resolver:
    """Finds libraries as ld.so does; one per closure (it caches what it read)."""

    def __init__(self, ld_cache: dict[str, list[str]] | None = None) -> None:
        self.ld_cache = read_ld_cache() if ld_cache is None else ld_cache
        self._info: dict[str, ElfInfo | None] = {}

    def info(self, path: str) -> ElfInfo | None:
        if path not in self._info:
            self._info[path] = read_elf(Path(path))
        return self._info[path]

    def _fits(self, path: str, want: ElfInfo) -> bool:
        if not os.path.isfile(path):
            return False
        info = self.info(os.path.realpath(path))
        return info is not None and info.machine == want.machine and info.elfclass == want.elfclass

    def find(self, soname: str, needer: str, info: ElfInfo, loaders_rpath: tuple[str, ...]) -> str | None:
        """Where the loader finds SONAME for NEEDER (a path as loaded), or None."""
        if "/" in soname:
            return soname if self._fits(soname, info) else None
        origin = os.path.dirname(needer)
        dirs: list[str] = []
        if not info.runpath:
            dirs += [_expand(d, origin, info.machine) for d in info.rpath] + list(loaders_rpath)
        dirs += [_expand(d, origin, info.machine) for d in info.runpath]
        for folder in dirs:
            candidate = os.path.join(folder or ".", soname)
            if self._fits(candidate, info):
                return os.path.normpath(candidate)
        for candidate in self.ld_cache.get(soname, []):
            if self._fits(candidate, info):
                return candidate
        for folder in DEFAULT_DIRS.get(info.machine, ("/lib", "/usr/lib")):
            candidate = os.path.join(folder, soname)
            if self._fits(candidate, info):
                return candidate
        return None


def closure(programs: Iterable[str], resolver: Resolver | None = None) -> list[Node]:
    """Every file and symlink the loader needs to run PROGRAMS (absolute host paths),
    sorted by path. Raises ClosureError naming the program and the missing library."""
    resolver = resolver or Resolver()
    found = _Found({})
    for program in programs:
        real = found.add(program)
        info = resolver.info(real)
        if info is None:
            continue  # a script or data file: only itself
        if info.interp:
            found.add(info.interp)
        # (path as loaded, the rpath its loaders pass down) breadth first, as ld.so does;
        # a name already loaded is not searched again (ld.so matches it by soname first)
        queue: list[tuple[str, tuple[str, ...]]] = [(os.path.realpath(program), ())]
        loaded: dict[str, str] = {}
        seen: set[str] = set()
        while queue:
            path, inherited = queue.pop(0)
            if path in seen:
                continue
            seen.add(path)
            obj = resolver.info(os.path.realpath(path))
            if obj is None:
                continue
            passed = inherited if obj.runpath else (*[_expand(d, os.path.dirname(path), obj.machine)
                                                      for d in obj.rpath], *inherited)
            for soname in obj.needed:
                lib = loaded.get(soname) or resolver.find(soname, path, obj, inherited)
                if lib is None:
                    raise ClosureError(f"{program}: library {soname} (needed by {path}) not found by the loader's rules")
                loaded[soname] = lib
                found.add(lib)
                queue.append((lib, passed))
    return sorted(found.nodes.values(), key=lambda n: n.path)
