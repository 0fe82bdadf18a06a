"""Initramfs compression: none or zstd (in-process, through `zstandard`)."""

from __future__ import annotations

import enum

from appliance.errors import ApplianceError


class Compression(enum.Enum):
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


def compress(data: bytes, kind: Compression, level: int = 0) -> bytes:
    """DATA compressed as KIND at LEVEL (0: default_level for its size)."""
    if kind is Compression.NONE:
        return data
    level = level or default_level(len(data))
    import zstandard  # imported here: plain builds must not need it

    # The kernel's decompressor wants the content size and a bounded window.
    params = zstandard.ZstdCompressionParameters.from_level(level, window_log=20, write_content_size=True)
    return zstandard.ZstdCompressor(compression_params=params).compress(data)


MAX_EXPANDED = 1 << 30  # an initramfs the runner's VMs could hold; a larger one is a bomb or damage


def decompress(data: bytes, limit: int = MAX_EXPANDED) -> bytes:
    """Undo `compress` whatever the kind, recognising zstd by its magic; refuse output
    over LIMIT bytes (a small input that claims gigabytes is never expanded whole)."""
    if not data.startswith(ZSTD_MAGIC):
        return data
    import zstandard

    try:
        claimed = zstandard.frame_content_size(data)  # -1: not in the header
        if claimed > limit:
            raise zstandard.ZstdError(f"its header claims {claimed} bytes")
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=limit)
    except zstandard.ZstdError as exc:
        raise ApplianceError(f"zstd data does not expand within {limit >> 20} MiB ({exc}): damaged, "
                             "or not an initramfs this tool made") from None
