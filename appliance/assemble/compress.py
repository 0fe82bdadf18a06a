"""Initramfs compression: none or zstd (in-process, through `zstandard`)."""

from __future__ import annotations

import enum
import os

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


def decompress(data: bytes, limit: int = MAX_EXPANDED) -> bytes:
    """Undo `compress` whatever the kind, recognising zstd by its magic; refuse output
    over LIMIT bytes (a small input that claims gigabytes is never expanded whole).
    Concatenated frames (an initramfs of pieces, see pieces.py) expand to their
    concatenation, as the kernel unpacks them; zero padding between frames is skipped."""
    if not data.startswith(ZSTD_MAGIC):
        return data
    import zstandard

    out: list[bytes] = []
    total, rest = 0, data
    try:
        while rest.startswith(ZSTD_MAGIC):
            claimed = zstandard.frame_content_size(rest)  # -1: not in the header
            if claimed > limit - total:
                raise zstandard.ZstdError(f"its header claims {claimed} bytes")
            frame = zstandard.ZstdDecompressor().decompressobj()
            # A frame that does not say its size (a streamed OCI layer) is fed in small
            # steps, so a bomb is caught before it fills memory.
            step = len(rest) if claimed >= 0 else 4096
            for start in range(0, len(rest), step):
                out.append(frame.decompress(rest[start:start + step]))
                total += len(out[-1])
                if total > limit:
                    raise zstandard.ZstdError(f"it expands past {total} bytes")
                if frame.eof:
                    break
            if not frame.eof:
                raise zstandard.ZstdError("a frame ends early")
            rest = frame.unused_data.lstrip(b"\0")
    except zstandard.ZstdError as exc:
        raise ApplianceError(f"zstd data does not expand within {limit >> 20} MiB ({exc}): damaged, "
                             "or not an initramfs this tool made") from None
    if rest:
        raise ApplianceError(f"zstd data is followed by {len(rest)} bytes that are not a frame: damaged, "
                             "or not an initramfs this tool made")
    return b"".join(out)
