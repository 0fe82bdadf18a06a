"""The cache of downloaded and built inputs (kernel packages, kernel sources, minimal
kernels, qboot's source, the kernels taken out of images): what is in it, how big each part is, and what to remove.

Each part is a folder of entries (one package, one source tree, one built image); an
entry is *in use* when a current lock file or template refers to it. Cleaning removes
the entries no one refers to (or all of them), one whole entry at a time, and only
inside the cache folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.assemble import apt, firmware, kernelfetch, minikernel, packages, pieces, pkglock, sources
from appliance.assemble.template import TEMPLATES, load_template
from appliance.errors import ApplianceError
from appliance.fsutil import Busy, locked

LOCK = ".lock"  # builds hold it shared; cleaning holds it alone (fsutil.locked)
PARTS = {
    "kernels": "Debian kernel packages, unpacked (debian.lock)",
    "sources": "Debian's linux-source, unpacked (linux-source.lock)",
    "minikernel": "minimal kernels: patched source (src-), object tree (out-), images (img-)",
    "qboot": "qboot's source from Debian's qemu source package (qboot.lock)",
    "debs": "Debian packages of templates' [packages] debian, named by digest (<template>.lock)",
    "pieces": "initramfs pieces: unpacked packages (deb-, by .deb digest and exclude list), compressed pieces "
              "and root images (rootfs-) by content; only the unpacked ones are in use: a build makes the rest again",
    "programs": "compiled guest programs, by source, headers, flags and toolchain (never in use)",
    "image-kernels": "kernels, modules and initrds taken out of templates' images (kernel = \"image\"), by the "
                     "image's signature (never in use: a build takes them out again)",
}


@dataclass(frozen=True)
class Entry:
    part: str
    path: Path
    bytes: int
    in_use: bool


def size(path: Path, seen: set[tuple[int, int]]) -> int:
    """Bytes on disk under PATH, as du counts them: a file hard-linked from several
    places (the patched source tree shares the unpacked one's files) counts once, for
    the first entry that holds it; SEEN carries what was counted already."""
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def entries(cache: Path, in_use: Iterable[Path]) -> list[Entry]:
    """Every entry of every part of CACHE, with its size and whether it is in use."""
    used = {p.resolve() for p in in_use}
    seen: set[tuple[int, int]] = set()
    found = []
    for part in sorted(p.name for p in cache.iterdir() if p.is_dir()) if cache.is_dir() else []:
        for path in sorted((cache / part).iterdir()):
            if path.name.startswith(".") and path.name.endswith(".lock"):
                continue  # a build's lock (fsutil.locked), not an entry
            found.append(Entry(part, path, size(path, seen) if path.is_dir() else path.lstat().st_size,
                               path.resolve() in used))
    return found


def clean(cache: Path, found: list[Entry], everything: bool) -> list[Entry]:
    """Remove the entries not in use (EVERYTHING: all of them); return what was removed.
    Refused while a build uses the cache (it holds the cache's lock shared)."""
    try:
        with locked(cache / LOCK, "a build is using the cache", wait=False):
            return _remove(cache, found, everything)
    except Busy as exc:
        raise ApplianceError(f"cannot clean the cache now: {exc}; run it again when the build has ended") from None


def _remove(cache: Path, found: list[Entry], everything: bool) -> list[Entry]:
    removed = []
    for entry in found:
        if entry.in_use and not everything:
            continue
        if cache.resolve() not in entry.path.resolve().parents:
            raise ValueError(f"{entry.path} is not inside the cache {cache}")
        if entry.path.is_dir() and not entry.path.is_symlink():
            shutil.rmtree(entry.path)
        else:
            entry.path.unlink()
        removed.append(entry)
    return removed


def in_use() -> list[Path]:
    """The cache entries the checkout's locks and templates refer to: the pinned Debian
    kernels (amd64 and arm64), the pinned linux-source and its patched tree and objects,
    the minimal kernel image of every compression the templates use (and the default),
    qboot, and the .debs the templates' package locks pin."""
    cache = kernelfetch.cache_dir()
    lock, source = kernelfetch.read_lock(kernelfetch.LOCK), minikernel.read_lock(minikernel.SOURCE_LOCK)
    templates = [load_template(p) for p in TEMPLATES.glob("*.toml")]
    variants = {("none", ())} | {(t.kernel_compression, t.kernel_fragments) for t in templates}
    recipes = [minikernel.recipe(str(c), extra) for c, extra in sorted(variants)]
    source_key = recipes[0].source_key()
    arm64 = kernelfetch.read_lock(kernelfetch.ARM64_LOCK)
    return [cache / "kernels" / f"{lock.package}_{lock.version}", cache / "kernels" / f"{arm64.package}_{arm64.version}",
            cache / "sources" / f"{source.package}_{source.version}",
            cache / "minikernel" / f"src-{source_key}", cache / "minikernel" / f"out-{source_key}",
            *(minikernel.image_dir(cache, r.key()) for r in recipes),
            cache / "qboot" / firmware.read_lock(firmware.QBOOT_LOCK).orig_sha256[:16],
            *(path for t in templates if t.debian for pin in (pkglock.read(packages.lock_file(t)) or pkglock.Lock((), ())).pins
              for path in (apt.cached_deb(pin, cache),
                           sources.unpacked_path(pieces.cache_dir(cache), pin, packages.excluded(t))))]
