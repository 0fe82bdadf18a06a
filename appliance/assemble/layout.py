"""One file tree from many sources, each file remembering where it came from.

Pure. Sources are the init, built programs, the template's files, host programs with
their libraries, and Debian packages. Two rules make them fit together:

- A directory symlink wins over a directory: a merged-/usr host brings /bin -> usr/bin
  while a package or our own programs bring files in a real /bin; those files move to
  usr/bin, as the usrmerge package would move them, and /bin stays the symlink.
- The same path from two sources is fine when both bring the same thing (a directory,
  identical bytes and mode, the same link target: two programs share libc); anything else
  is a collision, named with both sources.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.assemble import cpio
from appliance.errors import ApplianceError


class LayoutError(ApplianceError):
    """Two sources put different things on one path, or a required path is missing."""


@dataclass(frozen=True)
class Placed:
    entry: cpio.Entry
    source: str  # "init", "program bench", "template files/x", "host /usr/bin/python3", "debian libc6=2.36-9"


def _link_target(link_path: str, target: str) -> str:
    """A symlink's target as an image path (relative, normalized), "" if it leaves the image."""
    joined = target.lstrip("/") if target.startswith("/") else posixpath.join(posixpath.dirname(link_path), target)
    normal = posixpath.normpath(joined)
    return "" if normal.startswith("..") or normal == "." else normal


def _dir_links(items: list[Placed]) -> dict[str, str]:
    """Symlinks that point at a directory of the tree (some item lives below the target)."""
    links = {p.entry.path: _link_target(p.entry.path, p.entry.data.decode()) for p in items if p.entry.kind == "symlink"}
    prefixes: set[str] = set()
    for p in items:
        parts = p.entry.path.split("/")
        prefixes.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if p.entry.kind == "dir":
            prefixes.add(p.entry.path)
    return {path: target for path, target in links.items() if target and target in prefixes and target != path}


def canonical(path: str, dir_links: dict[str, str], whole: bool = True) -> str:
    """PATH with every directory symlink among its components followed (the last
    component too when WHOLE)."""
    parts = path.split("/")
    out = ""
    for i, part in enumerate(parts):
        out = f"{out}/{part}" if out else part
        last = i == len(parts) - 1
        hops = 0
        while out in dir_links and (whole or not last) and hops < 40:
            out, hops = dir_links[out], hops + 1
    return out


def _same(a: cpio.Entry, b: cpio.Entry) -> bool:
    if a.kind == "dir" and b.kind == "dir":
        return True
    return a.kind == b.kind and a.data == b.data and a.mode == b.mode


def merge(items: Iterable[Placed], where: str = "") -> list[Placed]:
    """The sources' entries as one tree, sorted by path; raises LayoutError on a
    collision (its message starts with WHERE, e.g. "template python: ")."""
    items = list(items)
    links = _dir_links(items)
    placed: dict[str, Placed] = {}
    for item in items:
        entry = item.entry
        if entry.kind == "symlink" and entry.path in links:
            path = canonical(entry.path, links, whole=False)
        else:
            path = canonical(entry.path, links, whole=entry.kind == "dir")
        if entry.kind == "dir" and path != entry.path and entry.path in links:
            continue  # a real directory where another source has the link: its files moved already
        moved = Placed(cpio.Entry(path, entry.mode, entry.data, entry.rdev_major, entry.rdev_minor, entry.mtime),
                       item.source)
        have = placed.get(path)
        if have is None:
            placed[path] = moved
        elif not _same(have.entry, moved.entry):
            raise LayoutError(f"{where}/{path} comes from {have.source} and from {item.source}, which differ: "
                              "drop one of them (or exclude the path)")
    return sorted(placed.values(), key=lambda p: p.entry.path)


def lookup(tree: list[Placed], path: str) -> Placed | None:
    """The regular file PATH (absolute guest path) names in TREE, following symlinks as
    the guest kernel would; None if it does not exist."""
    by_path = {p.entry.path: p for p in tree}
    current = path.lstrip("/")
    for _ in range(40):
        parts = current.split("/")
        for i in range(1, len(parts) + 1):
            head = "/".join(parts[:i])
            found = by_path.get(head)
            if found is not None and found.entry.kind == "symlink":
                target = _link_target(head, found.entry.data.decode())
                current = "/".join([target, *parts[i:]]) if target else ""
                break
        else:
            found = by_path.get(current)
            return found if found is not None and found.entry.kind == "file" else None
        if not current:
            return None
    return None
