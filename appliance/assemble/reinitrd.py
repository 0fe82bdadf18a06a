"""An initrd rebuilt from another one: recompressed, or without some kernel modules.

Pure bytes in, bytes out: what `appliance tune --rebuild` boots as variants that a
template change would otherwise need a full build for (the initrd's compression, its
module set). Entries keep their paths, modes and mtimes; the init's configuration
loses the module's line with the module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from appliance.assemble import compress, cpio
from appliance.assemble.compress import Compression

CONF = "etc/appliance/init.conf"
KEEP_MTIMES = 2**32 - 1  # cpio.write clamps mtimes to its epoch: keep them as read


def modules(blob: bytes) -> list[str]:
    """The modules the init loads, in order (names from init.conf's module lines)."""
    conf = {e.path: e for e in cpio.read_initrd(blob)}.get(CONF)
    lines = conf.data.decode().splitlines() if conf else []
    return [line.split()[2] for line in lines if line.startswith("module ") and len(line.split()) == 3]


def compression_of(blob: bytes) -> Compression:
    return Compression.ZSTD if blob.startswith(compress.ZSTD_MAGIC) else Compression.NONE


def rebuild(blob: bytes, compression: Compression | None = None, level: int = 0,
            without: Sequence[str] = ()) -> bytes:
    """BLOB's archive compressed as COMPRESSION (None: as it was) at LEVEL, without the
    modules named in WITHOUT (their files and init.conf lines). A name it does not load
    is a ValueError."""
    entries = cpio.read_initrd(blob)
    if without:
        known = set(modules(blob))
        unknown = [name for name in without if name not in known]
        if unknown:
            raise ValueError(f"the initrd does not load {', '.join(unknown)} (it loads: {', '.join(sorted(known))})")
        entries = _drop_modules(entries, set(without))
    archive = cpio.write(entries, KEEP_MTIMES)
    return compress.compress(archive, compression or compression_of(blob), level)


def _drop_modules(entries: list[cpio.Entry], names: set[str]) -> list[cpio.Entry]:
    out, paths = [], set()
    for entry in entries:
        if entry.path == CONF:
            kept = []
            for line in entry.data.decode().splitlines():
                words = line.split()
                if words[:1] == ["module"] and len(words) == 3 and words[2] in names:
                    paths.add(words[1].lstrip("/"))
                    continue
                kept.append(line)
            entry = cpio.Entry(entry.path, entry.mode, ("\n".join(kept) + "\n").encode(), mtime=entry.mtime)
        out.append(entry)
    return [e for e in out if e.path not in paths]


# init.conf lines about the payload: a boot-only initrd keeps none (the init then stops)
PAYLOAD_KEYS = ("payload", "shell", "env", "workdir", "user")


def boot_only(blob: bytes, keep: set[str], conf_keep: Callable[[str], bool] | None = None) -> bytes:
    """BLOB without the files whose paths are not in KEEP (directories and device nodes
    stay) and without the init.conf lines CONF_KEEP refuses (default: the payload's), so
    the init boots to the end of its work and stops. Booted beside the bundle, its
    to_init is the bundle's without unpacking the rest (analysis/cost.py)."""
    wanted = conf_keep or (lambda line: line.split(maxsplit=1)[0] not in PAYLOAD_KEYS)
    out = []
    for entry in cpio.read_initrd(blob):
        if entry.path == CONF:
            lines = [line for line in entry.data.decode().splitlines() if line.strip() and wanted(line)]
            entry = cpio.Entry(entry.path, entry.mode, ("\n".join(lines) + "\n").encode(), mtime=entry.mtime)
        elif entry.kind in ("file", "symlink") and entry.path not in keep:
            continue
        out.append(entry)
    return compress.compress(cpio.write(out, KEEP_MTIMES), compression_of(blob))


def init_only(blob: bytes, keep: set[str]) -> bytes:
    """The init alone (files in KEEP) with nothing to do but stop: the init-only lower
    bound on the bundle's own kernel."""
    return boot_only(blob, keep, lambda line: line.startswith("after "))
