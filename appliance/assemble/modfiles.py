"""Module files as the appliance ships them: uncompressed and stripped of debug info.

Loading a compressed module makes the kernel (or the init) decompress it at boot, and
debug info only costs initrd bytes, so both go at build time: .ko.xz, .ko.zst and
.ko.gz are decompressed in-process, then `strip --strip-debug` runs on the result.
"""

from __future__ import annotations

import gzip
import lzma
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance import proc
from appliance.assemble.kmod import ModuleError, ModuleIndex, strip_suffix, vermagic_release


@dataclass(frozen=True)
class ModuleFile:
    name: str
    path: str  # relative to lib/modules/<release>, always ending in .ko
    data: bytes
    original_size: int  # as the kernel package has it


def decompress(path: str, data: bytes) -> bytes:
    if path.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.endswith(".ko.zst"):
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=256 << 20)
    return data


# ELF e_machine: the host's strip reads only its own machine's objects
_AARCH64 = 183


def strip_debug(data: bytes) -> bytes:
    machine = int.from_bytes(data[18:20], "little") if data[:4] == b"\x7fELF" else 0
    tool = "aarch64-linux-gnu-strip" if machine == _AARCH64 else "strip"
    with tempfile.TemporaryDirectory(prefix="appliance-strip-") as tmp:
        path = Path(tmp) / "m.ko"
        path.write_bytes(data)
        proc.run([tool, "--strip-debug", str(path)])
        return path.read_bytes()


def prepare(index: ModuleIndex, moddir: Path, names: list[str], strip: bool = True,
            check: Callable[[Path], None] | None = None) -> list[ModuleFile]:
    """The files of NAMES, in that order, ready for the initrd; CHECK(path) vouches for
    each file first (a cached kernel tree's digests)."""
    out = []
    for name in names:
        shipped = index.paths[name]
        if check is not None:
            check(moddir / shipped)
        raw = (moddir / shipped).read_bytes()
        data = decompress(shipped, raw)
        release = vermagic_release(data)
        if release is not None and release != index.release:
            raise ModuleError(f"module {name} was built for kernel {release}, not {index.release}: "
                              "the modules directory does not match the kernel")
        out.append(ModuleFile(name, strip_suffix(shipped), strip_debug(data) if strip else data, len(raw)))
    return out
