"""The initramfs as a row of cached pieces.

Every source of the initramfs tree is one piece: the appliance's own files (the init,
its config, our programs, the template's files), the kernel modules, the host programs
with their libraries, each Debian package at its version, each container layer. A piece
is written as a newc archive of its own, compressed on its own, and the pieces are
concatenated: the kernel unpacks concatenated compressed archives one after the other
(init/initramfs.c), and `cpio.read`/`compress.decompress` read them the same way.

So a build compresses only the pieces whose bytes changed. A compressed piece is kept
in the cache under the sha256 of its uncompressed bytes, the compression, the level and
the zstd library's version: a warm build looks each piece up and concatenates, and a
template with one package changed compresses that package's piece alone. The output is
the same bytes whether a piece came from the cache or not, since the key is its content.

Pure except for the cache folder (None: no cache, every piece compressed now).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from appliance.assemble import cpio
from appliance.assemble.compress import Compression, compress, default_level
from appliance.assemble.layout import Placed
from appliance.fsutil import atomic_write

APPLIANCE, MODULES, HOST = "appliance", "modules", "host"


def cache_dir(cache: Path) -> Path:
    """Where compressed pieces are kept in the cache folder (`appliance cache`)."""
    return cache / "pieces"


def piece_of(source: str) -> str:
    """The piece a Placed.source belongs to: each package and container layer is its
    own; the init, programs, template files and network files are the appliance's."""
    if source.startswith(("debian ", "oci:")):
        return source
    if source.startswith("kernel module "):
        return MODULES
    if source.startswith(("host ", "host_files ")):
        return HOST
    return APPLIANCE


def _rank(name: str, first: int) -> tuple[int, str, int]:
    """Pieces in a fixed order: ours first (the init is what the kernel runs), then the
    modules, the host's files, the packages by name, the layers by their first path in
    the tree (FIRST: a layer's digest differs between an OCI layout's compressed blob and
    a docker archive's plain tar of the same files, and the bytes must not)."""
    fixed = {APPLIANCE: 0, MODULES: 1, HOST: 2}
    if name in fixed:
        return fixed[name], "", 0
    return (3, name, 0) if name.startswith("debian ") else (4, "", first)


@dataclass(frozen=True)
class Piece:
    """One piece as built: its name, its archive's bytes before and after compression,
    how many files it holds, and whether the compressed bytes came from the cache."""

    name: str
    raw_bytes: int
    bytes: int
    files: int
    cached: bool

    def fact(self) -> dict[str, object]:
        return {"name": self.name, "raw_bytes": self.raw_bytes, "bytes": self.bytes, "files": self.files}


def split(tree: list[Placed]) -> list[tuple[str, list[cpio.Entry]]]:
    """TREE (merged, so every path once) as pieces in their fixed order. Each piece
    carries the directories above its entries as TREE has them (mode included), so the
    kernel can create its files whatever piece made the directory; a directory that
    several pieces repeat is made once and keeps the same mode."""
    dirs = {p.entry.path: p.entry for p in tree if p.entry.kind == "dir"}
    groups: dict[str, dict[str, cpio.Entry]] = {}
    first: dict[str, int] = {}
    for index, placed in enumerate(tree):
        name = piece_of(placed.source)
        first.setdefault(name, index)
        group = groups.setdefault(name, {})
        group[placed.entry.path] = placed.entry
        for parent in map(str, PurePosixPath(placed.entry.path).parents):
            if parent in dirs:  # "." never is
                group.setdefault(parent, dirs[parent])
    return [(name, list(groups[name].values())) for name in sorted(groups, key=lambda n: _rank(n, first[n]))]


def _key(raw: bytes, kind: Compression, level: int) -> str:
    import zstandard

    digest = hashlib.sha256(raw)
    digest.update(f"\0{kind.value}\0{level}\0{zstandard.ZSTD_VERSION}".encode())
    return digest.hexdigest()


def _compressed(raw: bytes, kind: Compression, level: int, cache: Path | None) -> tuple[bytes, bool]:
    """RAW compressed, from CACHE when it holds it (then True); written there when not."""
    if kind is Compression.NONE:
        return raw, False
    path = cache / f"{_key(raw, kind, level)}.{kind.value}" if cache is not None else None
    if path is not None and path.is_file():
        return path.read_bytes(), True
    data = compress(raw, kind, level)
    if path is not None:
        atomic_write(path, data)  # whole or absent: two builds writing one piece agree on its bytes
    return data, False


def archive(tree: list[Placed], source_date_epoch: int, kind: Compression, level: int = 0,
            cache: Path | None = None) -> tuple[bytes, int, list[Piece]]:
    """TREE as concatenated compressed pieces: the initramfs, its uncompressed size (what
    the kernel unpacks) and the pieces. LEVEL 0 picks zstd's level by the whole tree's
    size, the same for every piece, so splitting does not change the level."""
    split_tree = split(tree)
    raws = [(name, cpio.write(entries, source_date_epoch), entries) for name, entries in split_tree]
    total = sum(len(raw) for _, raw, _ in raws)
    level = level or default_level(total)
    out, pieces = [], []
    for name, raw, entries in raws:
        data, cached = _compressed(raw, kind, level, cache)
        out.append(data)
        files = sum(1 for e in entries if e.kind == "file")
        pieces.append(Piece(name, len(raw), len(data), files, cached))
    return b"".join(out), total, pieces
