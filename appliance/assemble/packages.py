"""A template's [packages]: its lock file, the .debs it pins, and the host files it names,
turned into placed entries for the appliance's tree.
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.assemble import apt, pieces, pkglock, sources
from appliance.assemble.layout import Placed
from appliance.assemble.template import Template
from appliance.fsutil import stamp


def lock_file(template: Template) -> Path:
    return Path(template.folder) / f"{template.name}.lock"


def relock(template: Template, tool: apt.Apt) -> pkglock.Lock:
    """Resolve the template's packages with apt now and write its lock file."""
    where = f"template {template.name}: [packages] debian"
    pins = apt.describe(tool, apt.resolve(tool, template.debian, where), where)
    lock = pkglock.Lock(template.debian, tuple(pins))
    pkglock.write(lock_file(template), lock, template.name)
    return lock


def locked(template: Template, tool: apt.Apt) -> pkglock.Lock:
    """The template's lock: read (and checked against the template), or made now when
    the template has none yet (with a line saying so: it belongs in version control)."""
    path = lock_file(template)
    lock = pkglock.read(path)
    if lock is None:
        lock = relock(template, tool)
        print(f"  wrote {path}: {len(lock.pins)} packages pinned (commit it beside the template)")
    pkglock.check(lock, template.debian, path, template.name)
    return lock


def placed(template: Template, cache: Path, tool: apt.Apt | None = None) -> tuple[list[Placed], list[dict[str, Any]]]:
    """Every entry the template's [packages] bring: host programs and globs, then the
    locked Debian packages (downloaded into CACHE, digests checked, unpacked); and each
    Debian package's facts (version, architecture, digest, license) for the bundle."""
    where = f"template {template.name}: [packages]"
    out = sources.host(template.host, template.host_files, where)
    facts: list[dict[str, Any]] = []
    if template.debian:
        tool = tool or apt.Apt()
        lock = locked(template, tool)
        debs = fetch_all(tool, lock.pins, cache, f"template {template.name}")
        exclude = excluded(template)
        unpacked, facts = sources.packages(debs, exclude, pieces.cache_dir(cache))
        extra = pkglock.unasked(lock, {pin.name: part.control for (pin, _), part in zip(debs, unpacked, strict=True)})
        if extra:
            raise apt.PackageError(f"template {template.name}: {lock_file(template)} pins {', '.join(extra)}, which "
                                   f"[packages] debian = {list(template.debian)} does not bring in (added by hand?): "
                                   f"run `appliance lock {template.name}`")
        out += [entry for part in unpacked for entry in part.placed]
    return out, facts


def excluded(template: Template) -> tuple[str, ...]:
    """The paths left out of the template's packages: its own list, or the default."""
    return sources.DEFAULT_EXCLUDE if template.exclude is None else tuple(template.exclude)


def fetch_all(tool: apt.Apt, pins: Sequence[apt.Pin], cache: Path, where: str) -> list[tuple[apt.Pin, Path]]:
    """Every pinned .deb in the cache (the missing ones downloaded together), in the pins' order."""
    return list(zip(pins, apt.fetch_all(tool, pins, cache, where), strict=True))


def signature(template: Template) -> str:
    """What the [packages] are, for SCons: the lock file's text and the size and mtime
    of each named host file (upgrading a host program rebuilds the appliance). Cheap, so
    no ELF is read: a library upgraded under an unchanged program is not seen; rebuild
    with `scons -c` after a host upgrade."""
    path = lock_file(template)
    parts = [path.read_text() if path.is_file() else "no lock"]
    names = [p if "/" in p else (shutil.which(p) or p) for p in template.host]
    names += [m for pattern in template.host_files for m in sorted(glob.glob(pattern, recursive=True))]
    return "\n".join([*parts, *map(stamp, names)])
