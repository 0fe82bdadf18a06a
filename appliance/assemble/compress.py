"""Initramfs compression: none or zstd (in-process, through `zstandard`)."""

from __future__ import annotations

import enum
import os
from typing import Any

from appliance.errors import ApplianceError


class Compression(enum.StrEnum):
    NONE = "none"
    ZSTD = "zstd"


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


SMALL = 8 << 20  # an appliance without packages is 0.1-3 MiB of cpio


def default_level(size: int) -> int:
    """zstd's level for SIZE bytes of cpio: 19 for small archives (every appliance of
    our own programs: it costs well under a second), 9 for large ones (a Debian
    python3-minimal closure is 35 MB: level 19 takes 8-16 s there for 10% fewer bytes,
    and decompression speed hardly depends on the level)."""
    return 19 if size <= SMALL else 9


THREADED = 4 << 20  # from here on zstd compresses on every core (one piece of python3 is 20 MB)


def compress(data: bytes, kind: Compression, level: int = 0) -> bytes:
    """DATA compressed as KIND at LEVEL (0: default_level for its size): one zstd frame.
    A large input is compressed on every core; zstd's multithreaded output is the same
    for any number of workers, so the bytes do not depend on the machine."""
    if kind is Compression.NONE:
        return data
    level = level or default_level(len(data))
    import zstandard  # imported here: plain builds must not need it

    # The kernel's decompressor wants the content size and a bounded window.
    threads = max(os.cpu_count() or 1, 1) if len(data) >= THREADED else 0
    params = zstandard.ZstdCompressionParameters.from_level(level, window_log=20, write_content_size=True,
                                                            threads=threads)
    return zstandard.ZstdCompressor(compression_params=params).compress(data)


MAX_EXPANDED = 1 << 30  # an initramfs the runner's VMs could hold; a larger one is a bomb or damage


GZIP_MAGIC = b"\x1f\x8b"  # a distribution's initrd (initramfs-tools' default)


def decompress(data: bytes, limit: int = MAX_EXPANDED) -> bytes:
    """Undo `compress` whatever the kind, recognising zstd by its magic; refuse output
    over LIMIT bytes (a small input that claims gigabytes is never expanded whole).
    Concatenated frames (an initramfs of pieces, see pieces.py) expand to their
    concatenation, as the kernel unpacks them; zero padding between frames is skipped."""
    if not data.startswith(ZSTD_MAGIC):
        return data
    out: list[bytes] = []
    total, rest = 0, memoryview(data)
    while bytes(rest[:4]) == ZSTD_MAGIC:
        expanded, used = expand_one(rest, limit - total)
        out.append(expanded)
        total += len(expanded)
        rest = rest[used:]
        while len(rest) and rest[0] == 0:
            rest = rest[1:]
    if len(rest):
        raise ApplianceError(f"zstd data is followed by {len(rest)} bytes that are not a frame: damaged, "
                             "or not an initramfs this tool made")
    return b"".join(out)


def expand_one(data: bytes | memoryview, limit: int = MAX_EXPANDED) -> tuple[bytes, int]:
    """The first compressed stream of DATA (a zstd frame or a gzip member) expanded, and
    how many bytes of DATA it took; more than LIMIT bytes out is refused, fed in small
    steps so that a bomb is caught before it fills memory."""
    head = bytes(data[:4])
    error: type[Exception]
    stream: Any  # zstandard's or zlib's decompressor: decompress(), eof, unused_data
    if head == ZSTD_MAGIC:
        import zstandard  # imported here: plain builds must not need it

        kind, error = "zstd", zstandard.ZstdError
        claimed = zstandard.frame_content_size(data)  # -1: not in the header
        if claimed > limit:
            raise ApplianceError(f"zstd data does not expand within {limit >> 20} MiB (its header claims "
                                 f"{claimed} bytes): damaged, or not an initramfs")
        stream = zstandard.ZstdDecompressor().decompressobj()
        step = len(data) if claimed >= 0 else 4096
    elif head[:2] == GZIP_MAGIC:
        import zlib

        kind, error, stream, step = "gzip", zlib.error, zlib.decompressobj(16 + zlib.MAX_WBITS), 1 << 16
    else:
        raise ApplianceError(f"neither zstd nor gzip data (it begins {head!r}): damaged, or not an initramfs")
    out: list[bytes] = []
    total = fed = 0
    try:
        for start in range(0, len(data), step):
            chunk = data[start:start + step]
            fed = start + len(chunk)
            out.append(stream.decompress(chunk))
            total += len(out[-1])
            if total > limit:
                raise ApplianceError(f"{kind} data does not expand within {limit >> 20} MiB (it expands past "
                                     f"{total} bytes): damaged, or not an initramfs")
            if stream.eof:
                break
    except error as exc:
        raise ApplianceError(f"{kind} data does not expand ({exc}): damaged, or not an initramfs") from None
    if not stream.eof:
        raise ApplianceError(f"{kind} data does not expand: a frame ends early (damaged, or cut short)")
    return b"".join(out), fed - len(stream.unused_data)  # unused_data: what the last chunk held past the end
